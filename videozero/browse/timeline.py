"""A question's timeline: the video's mined shots and events, the question's evidence spans (and the
solver's consensus span), and every rollout's predicted span, one lane per checkpoint and verification
mode. Plain data in, lanes of bars with SVG coordinates out; the question page draws them.

>>> t = build_timeline(10.0, [], [[2.0, 4.0]], None, [])
>>> [(lane.kind, [(b.start, b.end, b.x, b.width) for b in lane.bars]) for lane in t.lanes]
[('evidence', [(2.0, 4.0, 324.0, 164.0)])]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MODES = ("full", "blind", "masked", "key_only", "random_span")
WIDTH = 1000.0  # SVG user units
LABEL_WIDTH = 160.0
RIGHT_MARGIN = 20.0  # room for the last tick's label
MIN_BAR = 2.0  # a zero-length span still shows
LANE_GAP = 4.0
ROW_HEIGHT = 14.0
SAMPLE_HEIGHT = 7.0


@dataclass(frozen=True)
class Bar:
    """One span drawn on a lane: its times, its place in SVG units and what it is."""

    start: float
    end: float
    x: float
    width: float
    y: float
    height: float
    kind: str  # shot, event, evidence, consensus, rollout
    css: str  # the class that colours it (correct / wrong / unformatted for rollouts)
    title: str  # shown on hover
    mode: str = ""
    checkpoint: str = ""
    sample: int = -1


@dataclass
class Lane:
    label: str
    kind: str
    y: float
    height: float
    bars: list[Bar] = field(default_factory=list)
    mode: str = ""
    checkpoint: str = ""
    note: str = ""  # e.g. "no span" counts of rollouts that gave none


@dataclass
class Timeline:
    duration: float
    lanes: list[Lane]
    height: float
    ticks: list[tuple[float, float]]  # (seconds, x)

    width: float = WIDTH
    track_x: float = LABEL_WIDTH
    track_width: float = WIDTH - LABEL_WIDTH - RIGHT_MARGIN


def x_of(t: float, duration: float) -> float:
    """The SVG x of time `t` on a timeline of `duration` seconds (clamped to the video)."""
    span = WIDTH - LABEL_WIDTH - RIGHT_MARGIN
    frac = 0.0 if duration <= 0 else min(max(t / duration, 0.0), 1.0)
    return round(LABEL_WIDTH + frac * span, 2)


def spans_of(value: Any) -> list[tuple[float, float]]:
    """[[s, e], ...] as float pairs, ignoring anything malformed (spans parsed from model output)."""
    out = []
    for item in value or []:
        if isinstance(item, list | tuple) and len(item) == 2:
            try:
                s, e = float(item[0]), float(item[1])
            except (TypeError, ValueError):
                continue
            if s == s and e == e:  # not NaN
                out.append((min(s, e), max(s, e)))
    return out


def _bar(s: float, e: float, duration: float, y: float, height: float, **kw: Any) -> Bar:
    x0, x1 = x_of(s, duration), x_of(e, duration)
    return Bar(s, e, x0, round(max(x1 - x0, MIN_BAR), 2), y, height, **kw)


def _ticks(duration: float) -> list[tuple[float, float]]:
    if duration <= 0:
        return []
    step = next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if duration / s <= 10), 1200)
    return [(float(t), x_of(t, duration)) for t in range(0, int(duration) + 1, step)]


def _outcome(attempt: Mapping[str, Any]) -> str:
    if not attempt.get("format_ok"):
        return "unformatted"
    if attempt.get("correct") is None:
        return "unscored"
    return "correct" if attempt["correct"] else "wrong"


def build_timeline(
    duration: float | None,
    segments: Sequence[Mapping[str, Any]],
    evidence: Any,
    consensus: Any,
    attempts: Sequence[Mapping[str, Any]],
) -> Timeline:
    """Lanes top to bottom: shots, events, evidence, consensus, then per checkpoint (in id order) one
    lane per mode with each sample's span on its own row. Attempts are `store.browse.question_attempts`
    rows with their "checkpoint" name (`views.labelled`)."""
    spans_seen = [e for _, e in spans_of(evidence)] + [float(s["end_s"]) for s in segments]
    for a in attempts:
        spans_seen += [e for _, e in spans_of(a.get("parsed_spans"))]
    length = float(duration) if duration and duration > 0 else max(spans_seen, default=1.0)
    lanes: list[Lane] = []
    y = 0.0

    def lane(label: str, kind: str, rows: int = 1, **kw: Any) -> Lane:
        nonlocal y
        height = ROW_HEIGHT if rows <= 1 else rows * SAMPLE_HEIGHT + 2
        made = Lane(label, kind, y, height, **kw)
        lanes.append(made)
        y += height + LANE_GAP
        return made

    for level, name in (("shot", "shots"), ("event", "events")):
        found = [s for s in segments if s["level"] == level]
        if found:
            row = lane(f"mined {name}", level)
            for seg in found:
                s, e = float(seg["start_s"]), float(seg["end_s"])
                labels = ", ".join(str(x) for x in (seg.get("labels") or [])[:3])
                title = f"{level} {s:.2f}-{e:.2f} s, saliency {float(seg.get('saliency') or 0):.2f}"
                row.bars.append(
                    _bar(s, e, length, row.y, row.height, kind=level, css=level,
                         title=title + (f" ({labels})" if labels else ""))
                )  # fmt: skip
    for kind, value, label in (("evidence", evidence, "evidence"), ("consensus", consensus, "consensus")):
        found = spans_of(value)
        if found:
            row = lane(label, kind)
            for s, e in found:
                row.bars.append(
                    _bar(s, e, length, row.y, row.height, kind=kind, css=kind, title=f"{label} {s:.2f}-{e:.2f} s")
                )  # fmt: skip
    groups: dict[tuple[int, str], list[Mapping[str, Any]]] = {}
    names: dict[int, str] = {}
    for a in attempts:
        cid = int(a["checkpoint_id"])
        names[cid] = str(a.get("checkpoint") or f"checkpoint {cid}")
        groups.setdefault((cid, str(a["mode"])), []).append(a)
    order = {m: i for i, m in enumerate(MODES)}
    for cid, mode in sorted(groups, key=lambda k: (k[0], order.get(k[1], len(MODES)), k[1])):
        rows = groups[(cid, mode)]
        samples = sorted({int(a["sample_index"]) for a in rows})
        row_of = {s: i for i, s in enumerate(samples)}
        row = lane(f"{names[cid]} · {mode}", "rollout", rows=len(samples), mode=mode, checkpoint=names[cid])
        empty = 0
        for a in rows:
            found = spans_of(a.get("parsed_spans"))
            if not found:
                empty += 1
                continue
            top = row.y + 1 + row_of[int(a["sample_index"])] * SAMPLE_HEIGHT if len(samples) > 1 else row.y
            height = SAMPLE_HEIGHT - 1 if len(samples) > 1 else row.height
            answer = a.get("parsed_answer")
            for s, e in found:
                title = (
                    f"{names[cid]}, {mode}, sample {a['sample_index']}: {s:.2f}-{e:.2f} s, "
                    f"answer {answer if answer is not None else '(none)'} ({_outcome(a)})"
                )
                row.bars.append(
                    _bar(s, e, length, top, height, kind="rollout", css=_outcome(a), title=title,
                         mode=mode, checkpoint=names[cid], sample=int(a["sample_index"]))
                )  # fmt: skip
        if empty:
            row.note = f"{empty} of {len(rows)} gave no span"
    return Timeline(length, lanes, max(y - LANE_GAP, 0.0) + 24.0, _ticks(length))
