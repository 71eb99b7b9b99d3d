"""Progress of long work: rich bars with an ETA on the console of the command that runs it, and a log line
every tenth of the way for the Prefect UI (a flow run served elsewhere has no console to draw on).

Stages report through a `ProgressReport`: `report(what, done, total, detail)`. The command that owns the
console opens `console_bars(console)` around the work; a `StageProgress` draws a bar per `what` there while
one is open (kept when done, with its elapsed time), and logs each tenth when given a logger.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class ProgressReport(Protocol):
    """What long work calls as it goes: `done` of `total` units of `what`, with a short `detail`."""

    def __call__(self, what: str, done: int, total: int, detail: str = "") -> None: ...


class ConsoleBars:
    """One rich bar per kind of work, on one console (rich draws one live display at a time)."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<34}", markup=False),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[detail]}", markup=False),
            console=console,
        )
        self._tasks: dict[str, TaskID] = {}
        self._lock = threading.Lock()

    def update(self, what: str, done: int, total: int, detail: str) -> None:
        with self._lock:
            task = self._tasks.get(what)
            if task is None:
                task = self._tasks[what] = self.progress.add_task(what, total=total, detail=detail)
            self.progress.update(task, completed=done, total=total, detail=detail)


_bars: ConsoleBars | None = None


@contextmanager
def console_bars(console: Console) -> Iterator[ConsoleBars]:
    """Draw the bars of every `StageProgress` on `console` while the block runs."""
    global _bars
    bars = ConsoleBars(console)
    with bars.progress:
        _bars = bars
        try:
            yield bars
        finally:
            _bars = None


class StageProgress:
    """A `ProgressReport` that draws on the open console bars (if any) and logs each tenth to `log`."""

    def __init__(self, log: Callable[[str], None] | None = None, prefix: str = "") -> None:
        self.log = log
        self.prefix = prefix
        self._logged: dict[str, int] = {}

    def __call__(self, what: str, done: int, total: int, detail: str = "") -> None:
        label = f"{self.prefix}{what}"
        if _bars is not None:
            _bars.update(label, done, total, detail)
        if self.log is not None:
            tenth = done * 10 // max(total, 1)
            if tenth > self._logged.get(label, -1):
                self._logged[label] = tenth
                self.log(f"{label}: {done}/{total}" + (f" ({detail})" if detail else ""))
