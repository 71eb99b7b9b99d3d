"""What the loop knows of one mined video: its dense frames and features, its segments and cuts.

`VideoEvidence` is read back from the store and the mining cache by the stages
(`stages.evidence.load_video_evidence`; the questioner is handed an `EvidenceLoader`): nothing is
recomputed. Times are the true timestamps of the mining sampling (2 fps by default), so query frames
cut from `frames` show exactly the instants the question names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from videozero.rewards import Span

EvidenceLoader = Callable[[int], "VideoEvidence"]
"""video id -> its mined evidence (the stages build one over the store and the mining cache)."""


@dataclass(frozen=True)
class SegmentView:
    """One mined evidence segment as the families use it (a plain copy of the store row)."""

    id: int | None
    level: str
    start_s: float
    end_s: float
    saliency: float
    parts: dict[str, float] = field(default_factory=dict)
    labels: tuple[tuple[str, float], ...] = ()

    @property
    def span(self) -> Span:
        return (self.start_s, self.end_s)

    @property
    def length(self) -> float:
        return self.end_s - self.start_s


@dataclass
class VideoEvidence:
    """A mined video: dense frames (uint8 [T, H, W, 3]) with true `timestamps`, L2-normalised `pooled`
    frame embeddings, per-frame `motion`, its segments (most salient first) and its shot cuts."""

    video_id: int | None
    path: str
    duration: float
    frames: np.ndarray
    timestamps: np.ndarray
    pooled: np.ndarray
    motion: np.ndarray
    segments: list[SegmentView]
    content_hash: str | None = None

    @property
    def seed_key(self) -> int:
        """What seeds this video's proposals: its content, never its row id (ids depend on the order in
        which videos were mined, which Ray workers do not keep).

        >>> VideoEvidence(7, "v.mp4", 1.0, *[np.zeros(0)] * 4, [], content_hash="00ff").seed_key
        255
        """
        if self.content_hash:
            return int(self.content_hash[:15], 16)
        return self.video_id or 0

    @property
    def cuts(self) -> list[float]:
        """Start times of every shot but the first, in order."""
        starts = sorted(s.start_s for s in self.segments if s.level == "shot")
        return starts[1:]

    def of_level(self, *levels: str) -> list[SegmentView]:
        return [s for s in self.segments if s.level in levels]

    def frame_index(self, t: float) -> int:
        return int(np.argmin(np.abs(self.timestamps - t)))

    def frames_in(self, span: Span) -> np.ndarray:
        """Indices of the sampled frames inside [start, end] (the nearest one if none falls inside)."""
        s, e = span
        idx = np.flatnonzero((self.timestamps >= s - 1e-6) & (self.timestamps <= e + 1e-6))
        return idx if len(idx) else np.array([self.frame_index((s + e) / 2)])

    def embedding(self, span: Span) -> np.ndarray:
        """The span's mean frame embedding, L2-normalised."""
        v = self.pooled[self.frames_in(span)].mean(0)
        return v / max(float(np.linalg.norm(v)), 1e-8)


def labels_of(value: Any) -> tuple[tuple[str, float], ...]:
    out = []
    for item in value or []:
        try:
            out.append((str(item["label"]), float(item["score"])))
        except (TypeError, KeyError, ValueError):
            continue
    return tuple(out)


def whole_video(ev: VideoEvidence) -> VideoEvidence:
    """The ablation without evidence anchoring: the video's mined event spans are replaced by equal
    windows over the whole video, all equally salient, so questions are not anchored to evidence."""
    shots = [s for s in ev.segments if s.level == "shot"]
    n = max(2, len(ev.of_level("event")))
    step = ev.duration / n
    labelled = {s.span: s.labels for s in ev.segments}
    windows = [
        SegmentView(None, "event", round(i * step, 3), round((i + 1) * step, 3), 0.5, {}, ())
        for i in range(n)
    ]
    windows = [replace(w, labels=labelled.get(w.span, ())) for w in windows]
    return replace(ev, segments=[*shots, *windows])
