"""Hierarchical evidence segments of one video: shots, events inside (or across) shots, frame anchors.

- shot: a span between two cuts;
- event: a run of frames inside a shot whose picture departs from the shot's usual state (something
  appears, moves or changes colour), or a burst of at least MONTAGE_SHOTS short shots in a row (an
  event across shots);
- frame: an anchor instant (start_s == end_s == the frame's true timestamp): the peak frame of every
  event and the most representative frame of every shot.
Every segment is scored with `saliency` and keeps its parts and top labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from videozero.evidence import saliency
from videozero.evidence.features import FrameFeatures, small_grey
from videozero.evidence.shots import Shot
from videozero.video.frame_encoder import imagenet_classes

# A thumbnail cell (grey, 0-1) counts as changed when it differs from the shot's usual state by this.
CELL_CHANGE = 0.1
THUMB_SIDE = 32
# A frame is part of an event when more than this fraction of its cells changed, and more than twice
# what is usual in its shot (camera motion raises the bar).
MIN_CHANGED = 0.03
MAX_EVENTS_PER_SHOT = 4
# Shots shorter than this, MONTAGE_SHOTS or more in a row, form one event across shots.
MONTAGE_SHOT_S = 1.5
MONTAGE_SHOTS = 3
LABELS_PER_SEGMENT = 3


@dataclass
class EvidenceSegment:
    """A mined evidence candidate. `first`/`stop` index the sampled frames it holds; `parent` is the
    position of its enclosing segment in the same list (None for shots and cross-shot events)."""

    level: str
    start_s: float
    end_s: float
    first: int
    stop: int
    saliency: float = 0.0
    parts: dict[str, float] = field(default_factory=dict)
    labels: list[dict[str, Any]] = field(default_factory=list)
    parent: int | None = None


def thumbnails(frames: np.ndarray) -> np.ndarray:
    """Grey THUMB_SIDE x THUMB_SIDE thumbnails in [0, 1], float32 [T, S, S]."""
    return (small_grey(frames, (THUMB_SIDE, THUMB_SIDE)) / 255.0).numpy()


def changed_fraction(thumbs: np.ndarray) -> np.ndarray:
    """Per frame: the fraction of cells that differ from the median frame of `thumbs` by CELL_CHANGE."""
    if len(thumbs) == 0:
        return np.zeros(0)
    usual = np.median(thumbs, axis=0)
    return (np.abs(thumbs - usual) > CELL_CHANGE).mean((1, 2))


def runs(active: np.ndarray, max_gap: int = 1) -> list[tuple[int, int]]:
    """[first, stop) of the runs of True, joining runs separated by at most `max_gap` False.

    >>> runs(np.array([0, 1, 1, 0, 1, 0, 0, 1], bool))
    [(1, 5), (7, 8)]
    """
    idx = np.flatnonzero(active)
    if len(idx) == 0:
        return []
    out, start, prev = [], int(idx[0]), int(idx[0])
    for i in idx[1:]:
        if i - prev > max_gap + 1:
            out.append((start, prev + 1))
            start = int(i)
        prev = int(i)
    out.append((start, prev + 1))
    return out


def frame_edges(timestamps: np.ndarray, shot: Shot) -> np.ndarray:
    """Time boundaries between the shot's frames (midpoints), from the shot's start to its end."""
    t = timestamps[shot.first : shot.stop]
    return np.concatenate([[shot.start_s], (t[1:] + t[:-1]) / 2, [shot.end_s]])


def shot_events(
    thumbs: np.ndarray, timestamps: np.ndarray, shot: Shot
) -> list[tuple[int, int, float, float, int]]:
    """Events inside a shot: (first, stop, start_s, end_s, peak frame), strongest first."""
    n = shot.stop - shot.first
    if n < 3:
        return []
    change = changed_fraction(thumbs[shot.first : shot.stop])
    active = change > max(MIN_CHANGED, 2.0 * float(np.median(change)))
    edges = frame_edges(timestamps, shot)
    found = []
    for a, b in runs(active):
        if b - a >= 0.9 * n:  # the whole shot changes: the shot itself is the evidence
            continue
        peak = a + int(np.argmax(change[a:b]))
        found.append(
            (float(change[a:b].sum()), shot.first + a, shot.first + b, edges[a], edges[b], shot.first + peak)
        )
    found.sort(key=lambda e: -e[0])
    return [(f, s, float(t0), float(t1), p) for _, f, s, t0, t1, p in found[:MAX_EVENTS_PER_SHOT]]


def montage_events(shots: list[Shot]) -> list[tuple[int, int]]:
    """(first shot, stop shot) of every burst of MONTAGE_SHOTS or more short shots in a row."""
    short = np.array([s.end_s - s.start_s < MONTAGE_SHOT_S for s in shots], bool)
    return [(a, b) for a, b in runs(short, max_gap=0) if b - a >= MONTAGE_SHOTS]


def segment_labels(feats: FrameFeatures, first: int, stop: int) -> list[dict[str, Any]]:
    """The span's top ImageNet labels by mean probability over its frames."""
    totals: dict[int, float] = {}
    for ids, probs in zip(feats.label_ids[first:stop], feats.label_probs[first:stop], strict=True):
        for j, p in zip(ids.tolist(), probs.tolist(), strict=True):
            totals[j] = totals.get(j, 0.0) + p
    names = imagenet_classes()
    best = sorted(totals.items(), key=lambda kv: -kv[1])[:LABELS_PER_SEGMENT]
    return [{"label": names[j], "score": round(s / max(1, stop - first), 4)} for j, s in best]


def representative_frame(pooled: np.ndarray, first: int, stop: int) -> int:
    """The frame of [first, stop) closest to the span's mean embedding."""
    centre = pooled[first:stop].mean(0)
    return first + int(np.argmax(pooled[first:stop] @ centre))


def build_segments(
    frames: np.ndarray, feats: FrameFeatures, shots: list[Shot], duration_s: float
) -> list[EvidenceSegment]:
    """All evidence segments of a video, scored; parents come before their children in the list."""
    ts = feats.timestamps
    thumbs = thumbnails(frames)
    segs: list[EvidenceSegment] = []
    for shot in shots:
        segs.append(EvidenceSegment("shot", shot.start_s, shot.end_s, shot.first, shot.stop))
        shot_pos = len(segs) - 1
        for first, stop, t0, t1, peak in shot_events(thumbs, ts, shot):
            segs.append(EvidenceSegment("event", t0, t1, first, stop, parent=shot_pos))
            t = float(ts[peak])
            segs.append(EvidenceSegment("frame", t, t, peak, peak + 1, parent=len(segs) - 1))
        rep = representative_frame(feats.pooled, shot.first, shot.stop)
        segs.append(EvidenceSegment("frame", float(ts[rep]), float(ts[rep]), rep, rep + 1, parent=shot_pos))
    for a, b in montage_events(shots):
        segs.append(
            EvidenceSegment("event", shots[a].start_s, shots[b - 1].end_s, shots[a].first, shots[b - 1].stop)
        )
    score_segments(segs, feats, duration_s)
    return segs


def score_segments(segs: list[EvidenceSegment], feats: FrameFeatures, duration_s: float) -> None:
    """Fill in every segment's saliency parts, saliency and labels (spread is judged per level)."""
    scale = saliency.motion_scale(feats.motion)
    for s in segs:
        s.parts = {
            "motion": round(saliency.span_motion(feats.motion, s.first, s.stop, scale), 4),
            "novelty": round(saliency.span_novelty(feats.pooled, s.first, s.stop), 4),
            "label_change": round(saliency.span_label_change(feats.label_ids, s.first, s.stop), 4),
        }
        s.labels = segment_labels(feats, s.first, s.stop)
    for level in ("shot", "event", "frame"):
        group = [s for s in segs if s.level == level]
        if not group:
            continue
        base = np.array([sum(saliency.WEIGHTS[k] * s.parts[k] for k in s.parts) for s in group])
        centres = np.array([(s.start_s + s.end_s) / 2 for s in group])
        for s, value in zip(group, saliency.spread(centres, base, duration_s), strict=True):
            s.parts["spread"] = round(float(value), 4)
            s.saliency = saliency.combine(s.parts)
