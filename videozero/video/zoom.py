"""The zoomed view of a video: its frames inside a set of spans, denser than the overview, each at its true
time, as Zoom-Zero's zoom-in reward and coarse-to-fine inference and VideoZoomer's `<video_zoom>` tool
show them.

A zoomed view is cut from a dense source: the frames of the video decoded at the zoom rate through the
same decode path and frame cache as everything else (`dense_source`), or frames already decoded at that
rate (the mined frames the questioner wrote its questions on). Spans are read as the sources read them:
clamped to the video, spans of no length dropped; when none is left, or no frame falls inside them, the
view is `fallback_frames` spread evenly over the whole video (Zoom-Zero's rule) and says so.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from videozero.rewards import Span
from videozero.video.cache import VideoCache, load_clip
from videozero.video.decode import SamplingConfig
from videozero.video.inputs import VideoInput

DENSE_MAX_FRAMES = 4096  # a dense source holds at most this many frames (about 34 min at 2 fps)


@dataclass(frozen=True)
class ZoomView:
    """The frames shown for a zoom into `spans` (the spans as read: clamped, empty ones dropped) and
    whether the view fell back to the whole video because no span held a frame."""

    video: VideoInput
    spans: tuple[Span, ...]
    fallback: bool

    @property
    def times(self) -> list[float]:
        return [round(float(t), 3) for t in self.video.timestamps]


def usable_spans(spans: Sequence[Span], duration: float) -> tuple[Span, ...]:
    """`spans` clamped to [0, duration], ordered, those of no length (or not finite) dropped.

    >>> usable_spans([(8.0, 12.0), (3.0, 3.0), (-1.0, 2.0), (float("nan"), 1.0)], 10.0)
    ((0.0, 2.0), (8.0, 10.0))
    """
    out = []
    for s, e in spans:
        if not (np.isfinite(s) and np.isfinite(e)):
            continue
        s, e = sorted((float(s), float(e)))
        s, e = max(0.0, s), min(float(duration), e) if duration > 0 else e
        if e > s:
            out.append((s, e))
    return tuple(sorted(out))


def _even(indices: np.ndarray, n: int) -> np.ndarray:
    """At most `n` of `indices`, spread evenly (first and last kept)."""
    if len(indices) <= n:
        return indices
    return indices[np.unique(np.linspace(0, len(indices) - 1, n).round().astype(int))]


def zoom_view(
    source: VideoInput,
    spans: Sequence[Span],
    duration: float,
    max_frames: int,
    fps: float | None = None,
    fallback_frames: int | None = None,
) -> ZoomView:
    """The frames of `source` inside `spans`, at most `fps` per second of video time (None: every source
    frame) and at most `max_frames` in all (spread evenly), with their true times.

    >>> src = VideoInput(np.zeros((20, 2, 2, 3), np.uint8), np.arange(20) / 2.0)  # 2 fps, 10 s
    >>> v = zoom_view(src, [(2.0, 4.0)], 10.0, max_frames=16)
    >>> v.times, v.fallback
    ([2.0, 2.5, 3.0, 3.5, 4.0], False)
    >>> zoom_view(src, [(4.0, 4.0)], 10.0, max_frames=3).times  # nothing usable: the whole video
    [0.0, 5.0, 9.5]
    """
    kept = usable_spans(spans, duration)
    t = source.timestamps
    hit = np.zeros(len(t), dtype=bool)
    for s, e in kept:
        hit |= (t >= s - 1e-6) & (t <= e + 1e-6)
    picked = np.flatnonzero(hit)
    if fps is not None and len(picked) > 1:
        total = sum(e - s for s, e in kept)
        picked = _even(picked, max(1, int(np.floor(total * fps)) + 1))
    if len(picked) == 0:
        picked = _even(np.arange(len(t)), fallback_frames or max_frames)
        return ZoomView(source.drop(~np.isin(np.arange(len(t)), picked)), kept, True)
    picked = _even(picked, max_frames)
    return ZoomView(source.drop(~np.isin(np.arange(len(t)), picked)), kept, False)


def dense_source(
    path: str | Path, fps: float, short_side: int, cache: VideoCache | None = None
) -> VideoInput:
    """A video decoded at the zoom rate (`fps`, up to DENSE_MAX_FRAMES), through the frame cache: what a
    zoomed view is cut from when no denser frames are at hand."""
    clip = load_clip(path, SamplingConfig(fps=fps, max_frames=DENSE_MAX_FRAMES, short_side=short_side), cache)
    return VideoInput.from_clip(clip)


class DenseSources:
    """Dense sources by video path, decoded (or read from the frame cache) once and the last `keep` held,
    so that the questions of one video zoom into frames read once: `sources.of(path)` is what a zoom
    calls when it needs them (None for a question without a video file)."""

    def __init__(self, fps: float, short_side: int, cache: VideoCache | None = None, keep: int = 4) -> None:
        self.fps, self.short_side, self.cache, self.keep = fps, short_side, cache, keep
        self._held: OrderedDict[str, VideoInput] = OrderedDict()

    def __call__(self, path: str) -> VideoInput:
        if path in self._held:
            self._held.move_to_end(path)
        else:
            self._held[path] = dense_source(path, self.fps, self.short_side, self.cache)
            while len(self._held) > self.keep:
                self._held.popitem(last=False)
        return self._held[path]

    def of(self, path: str | Path | None) -> Callable[[], VideoInput | None]:
        return lambda: self(str(path)) if path is not None else None
