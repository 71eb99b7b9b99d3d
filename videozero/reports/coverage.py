"""Which of a run's videos carry questions, and why a video carries none.

A video the user gave that yields no training or held-out question would otherwise vanish silently from
a run (a static camera with one shot has no cuts to count, a clip without events has no segments to
ask about). `stages.report.video_coverage` counts each video's questions from the store and, for a
video of `MIN_REPORTED_S` or more without one, asks every family why (`families.family_support`); the
iterate command prints the result as a table (`coverage_table`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

# Videos shorter than this are not reported when they get no question (a 2 s clip rarely can).
MIN_REPORTED_S = 10.0


@dataclass
class VideoCoverage:
    """One video of a run: its split, duration, questions (accepted / stored) and, without any, why."""

    path: str
    split: str
    duration_s: float | None
    questions: int
    accepted: int
    reason: str = ""


def coverage_table(items: Sequence[VideoCoverage]) -> Table | None:
    """The videos without an accepted question and why (None when every reported video has some)."""
    missing = [c for c in items if c.reason]
    if not missing:
        return None
    table = Table(
        title=f"{len(missing)} of {len(items)} videos got no question",
        caption=f"videos shorter than {MIN_REPORTED_S:.0f} s are not listed",
    )
    for col in ("video", "split", "duration s", "why"):
        table.add_column(col, justify="right" if col == "duration s" else "left", overflow="fold")
    for c in missing:
        duration = "-" if c.duration_s is None else f"{c.duration_s:.1f}"
        table.add_row(Path(c.path).name, c.split, duration, c.reason)
    return table
