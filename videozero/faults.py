"""Named crash points for the reliability tests: a process whose $VIDEOZERO_CRASH_AT names a point kills
itself with SIGKILL there, as a power cut or the kernel's OOM killer would, so that a test can stop a real
run exactly at a stage boundary or inside a stage and check that resuming it loses and duplicates nothing.
Unset (always, outside those tests) a crash point costs one environment lookup."""

from __future__ import annotations

import os
import signal

CRASH_ENV = "VIDEOZERO_CRASH_AT"


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL when $VIDEOZERO_CRASH_AT equals `name` (e.g. 'solver:end')."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


PAUSE_ENV, PAUSE_FLAG_ENV = "VIDEOZERO_PAUSE_AT", "VIDEOZERO_PAUSE_FLAG"


def pause_point(name: str) -> None:
    """Hold this process forever at `name` when $VIDEOZERO_PAUSE_AT names it and the file
    $VIDEOZERO_PAUSE_FLAG exists, after writing `<flag>.<pid>`: a test then knows that a worker is inside
    a task and can kill its node there."""
    if os.environ.get(PAUSE_ENV) != name:
        return
    flag = os.environ.get(PAUSE_FLAG_ENV)
    if not flag or not os.path.exists(flag):
        return
    with open(f"{flag}.{os.getpid()}", "w") as f:
        f.write(name)
    while True:
        signal.pause()
