"""Which of a run's videos carry questions, and why a video carries none.

A video the user gave that yields no training or held-out question would otherwise vanish silently from
a run (a static camera with one shot has no cuts to count, a clip without events has no segments to
ask about). `video_coverage` counts each video's questions from the store and, for a video of
`MIN_REPORTED_S` or more without one, asks every family why (`families.family_support`); the iterate
command prints the result as a table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from store.questions import video_outcomes
from store.runs import round_row, run_video_rows
from videozero.errors import VideozeroError

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


def video_coverage(
    store, run_id: int, families: Sequence[str], cache_dir: str | Path | None = None
) -> list[VideoCoverage]:
    """Every video of the run (and every input that could not be mined) with its question counts; a
    video of MIN_REPORTED_S or more without an accepted question gets the reason."""
    with store.session() as s:
        videos = run_video_rows(s, run_id)
        rows = video_outcomes(s, run_id)
        first = round_row(s, run_id, 0)
    mine = ((first.stages or {}) if first else {}).get("mine")
    errors = mine.get("errors", []) if isinstance(mine, dict) else []
    stored: Counter[int] = Counter(r.video_id for r in rows)
    accepted: Counter[int] = Counter(r.video_id for r in rows if r.status == "accepted")
    rejected: dict[int, Counter[str]] = {}
    for r in rows:
        if r.status != "accepted" and r.reject_reason:
            rejected.setdefault(r.video_id, Counter())[r.reject_reason.split(":")[0]] += 1
    out = []
    for video_id, split, path, duration in videos:
        item = VideoCoverage(path, split, duration, stored[video_id], accepted[video_id])
        if not item.accepted and (duration or 0.0) >= MIN_REPORTED_S:
            item.reason = _why_none(store, video_id, split, families, cache_dir, rejected.get(video_id))
        out.append(item)
    for line in errors:
        path, _, error = str(line).partition(": ")
        out.append(VideoCoverage(path, "-", None, 0, 0, f"not mined: {error}"))
    return out


def _why_none(
    store,
    video_id: int,
    split: str,
    families: Sequence[str],
    cache_dir: str | Path | None,
    rejected: Counter | None,
) -> str:
    """Why a video has no accepted question ('' for a training video no round has asked about yet)."""
    from videozero.questioner.families import family_support
    from videozero.stages.evidence import load_video_evidence

    if rejected:
        top = ", ".join(f"{why} ({n})" for why, n in rejected.most_common(2))
        return f"all {sum(rejected.values())} proposed questions were rejected: {top}"
    try:
        ev = load_video_evidence(store, video_id, cache_dir)
    except VideozeroError as exc:
        return str(exc)
    support = family_support(ev, families)
    lacking = [f"{f}: {why}" for f, why in support.items() if why]
    if len(lacking) == len(support):
        return "; ".join(lacking)
    if split == "train":
        return ""
    return (
        "the families it supports ("
        + ", ".join(f for f, why in support.items() if not why)
        + ") gave only questions with degenerate evidence (most of the video)"
    )


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
