"""The probe modes' views of a video: what a question is asked with when the video is hidden (blind), its
evidence is blanked (masked), only its evidence is shown (key_only), or a span of the same length placed
elsewhere is shown instead (random_span). Verification and the paper's diagnostics use the same views."""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from videozero.errors import VideozeroError
from videozero.rewards import Span
from videozero.video.inputs import VideoInput

PROBE_MODES = ("blind", "masked", "key_only", "random_span")


def inside(timestamps: np.ndarray, spans: Sequence[Span]) -> np.ndarray:
    """Which frames are shown inside any of `spans` (start inclusive, end exclusive)."""
    t = np.asarray(timestamps, dtype=np.float64)
    hit = np.zeros(len(t), dtype=bool)
    for s, e in spans:
        hit |= (t >= s - 1e-6) & (t < e - 1e-6)
    return hit


def random_span(evidence: Sequence[Span], duration: float, seed: int) -> Span:
    """A span as long as the evidence in total, placed at random (seeded), away from the evidence if it fits.

    >>> s, e = random_span([(2.0, 3.0)], 10.0, seed=1)
    >>> round(e - s, 6), e <= 2.0 or s >= 3.0
    (1.0, True)
    """
    length = min(sum(e - s for s, e in evidence), duration)
    rng = random.Random(seed)
    first = None
    for _ in range(32):
        start = rng.uniform(0.0, max(0.0, duration - length))
        span = (start, start + length)
        first = first or span
        if all(span[1] <= s or span[0] >= e for s, e in evidence):
            return span
    return first or (0.0, length)


def _keep_nearest(video: VideoInput, keep: np.ndarray, span: Span) -> VideoInput:
    """`video` restricted to `keep`; if no frame falls inside, the frame nearest the span's middle."""
    if not keep.any():
        keep = np.zeros(len(video), dtype=bool)
        keep[int(np.argmin(np.abs(video.timestamps - (span[0] + span[1]) / 2)))] = True
    return video.drop(~keep)


def mode_video(
    video: VideoInput, evidence: Sequence[Span], mode: str, duration: float, seed: int
) -> VideoInput | None:
    """The video a question is asked with in `mode` (None: blind). Evidence-free questions cannot be
    masked or cut to their evidence, so those modes need evidence."""
    if mode == "full":
        return video
    if mode == "blind":
        return None
    if mode not in PROBE_MODES:
        raise VideozeroError(f"unknown attempt mode {mode!r}: use one of full, {', '.join(PROBE_MODES)}.")
    if not evidence:
        raise VideozeroError(f"mode {mode} needs the question's evidence spans, and it has none.")
    hull = (min(s for s, _ in evidence), max(e for _, e in evidence))
    if mode == "masked":
        return video.blank(inside(video.timestamps, evidence))
    if mode == "key_only":
        return _keep_nearest(video, inside(video.timestamps, evidence), hull)
    span = random_span(evidence, duration, seed)
    return _keep_nearest(video, inside(video.timestamps, [span]), span)
