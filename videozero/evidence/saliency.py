"""Saliency of evidence spans, kept in its parts so the questioner (and a reader of the store) can see
why a span ranks where it does.

- `motion`: mean motion energy of the span's frames, relative to the video's busiest frames;
- `novelty`: how far the span's mean embedding is from the rest of the video (cosine distance);
- `label_change`: how much the span's top ImageNet labels differ from those just before it;
- `spread`: how far in time the span is from any span of the same level that scores higher on the
  other three parts, so that the top-ranked evidence is spread over the video, not all at its start.
"""

from __future__ import annotations

import numpy as np

WEIGHTS = {"motion": 0.35, "novelty": 0.35, "label_change": 0.15, "spread": 0.15}
# A span as far as this fraction of the video from any stronger span gets the whole spread credit.
SPREAD_REACH = 0.25
# A cosine distance this large between a span and the rest of the video counts as fully novel.
NOVELTY_FULL = 0.5


def motion_scale(motion: np.ndarray) -> float:
    """The video's reference motion level: its 95th-percentile frame (never below a visible change)."""
    return max(float(np.percentile(motion, 95)) if len(motion) else 0.0, 0.02)


def span_motion(motion: np.ndarray, first: int, stop: int, scale: float) -> float:
    """Mean motion of frames [first, stop) and of the change into `stop` (the span's last transition),
    in [0, 1] relative to `scale`."""
    window = motion[first + 1 : min(stop + 1, len(motion))] if stop - first > 1 else motion[first : first + 1]
    return float(min(1.0, float(np.mean(window)) / scale)) if len(window) else 0.0


def span_novelty(pooled: np.ndarray, first: int, stop: int) -> float:
    """Cosine distance between the span's mean embedding and the mean embedding of the other frames,
    relative to NOVELTY_FULL, in [0, 1]."""
    if stop - first >= len(pooled):
        return 0.0
    inside = pooled[first:stop].mean(0)
    rest = np.concatenate([pooled[:first], pooled[stop:]]).mean(0)
    denom = float(np.linalg.norm(inside) * np.linalg.norm(rest)) or 1.0
    return float(np.clip((1.0 - float(inside @ rest) / denom) / NOVELTY_FULL, 0.0, 1.0))


def label_set(label_ids: np.ndarray, first: int, stop: int, k: int = 3) -> set[int]:
    """The `k` most frequent top-1 labels of frames [first, stop)."""
    ids, counts = np.unique(label_ids[first:stop, 0], return_counts=True)
    return {int(i) for i in ids[np.argsort(-counts, kind="stable")[:k]]}


def span_label_change(label_ids: np.ndarray, first: int, stop: int) -> float:
    """Jaccard distance between the span's top labels and those of an equally long stretch just before
    it (for a span at the start of the video: just after it).

    >>> ids = np.array([[1], [1], [2], [2]])
    >>> span_label_change(ids, 2, 4), span_label_change(ids, 1, 2)
    (1.0, 0.0)
    """
    n = stop - first
    before = (max(0, first - n), first) if first > 0 else (stop, min(len(label_ids), stop + n))
    if before[1] <= before[0]:
        return 0.0
    a, b = label_set(label_ids, first, stop), label_set(label_ids, *before)
    return 1.0 - len(a & b) / len(a | b)


def spread(centres: np.ndarray, base: np.ndarray, duration_s: float) -> np.ndarray:
    """Per span: distance to the nearest span with a higher base score, as a fraction of
    SPREAD_REACH x duration (1 for the strongest span and for spans far from any stronger one).

    >>> spread(np.array([1.0, 2.0, 9.0]), np.array([0.9, 0.5, 0.4]), 10.0).round(2).tolist()
    [1.0, 0.4, 1.0]
    """
    reach = max(SPREAD_REACH * duration_s, 1e-6)
    out = np.ones(len(centres))
    for i in range(len(centres)):
        stronger = centres[(base > base[i]) | ((base == base[i]) & (np.arange(len(base)) < i))]
        if len(stronger):
            out[i] = min(1.0, float(np.abs(stronger - centres[i]).min()) / reach)
    return out


def combine(parts: dict[str, float]) -> float:
    """The saliency of a span: the weighted sum of its parts, in [0, 1].

    >>> combine({"motion": 1.0, "novelty": 1.0, "label_change": 1.0, "spread": 1.0})
    1.0
    """
    return round(sum(WEIGHTS[k] * float(parts[k]) for k in WEIGHTS), 6)
