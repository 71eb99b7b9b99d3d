"""Run the real `videozero` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def videozero(
    *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`videozero ARGS...` with a wide terminal; returns the finished process (stdout, stderr, returncode)."""
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "videozero.cli.app", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )


def assert_one_sentence_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    """A failed command: non-zero exit, no traceback, and the message names the problem."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    assert fragment in " ".join(proc.stderr.split()), proc.stderr
