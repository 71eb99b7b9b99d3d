"""What the loop knows of one mined video: its dense frames and features, its segments and cuts.

`VideoEvidence` is read back from the store and the mining cache (`load_video_evidence`): nothing is
recomputed. Times are the true timestamps of the mining sampling (2 fps by default), so query frames
cut from `frames` show exactly the instants the question names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from videozero.rewards import Span


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


def _labels(value: Any) -> tuple[tuple[str, float], ...]:
    out = []
    for item in value or []:
        try:
            out.append((str(item["label"]), float(item["score"])))
        except (TypeError, KeyError, ValueError):
            continue
    return tuple(out)


def load_video_evidence(store, video_id: int, cache_dir: str | Path | None = None) -> VideoEvidence:
    """A stored, mined video's evidence, from the store's segments and the mining cache."""
    from store.tables import Video
    from videozero.errors import VideozeroError
    from videozero.evidence.mine import DEFAULT_SAMPLING, load_evidence, video_segments

    with store.session() as session:
        video = session.get(Video, video_id)
        if video is None:
            raise VideozeroError(
                f"video {video_id} is not in the store: mine it first with `videozero mine`."
            )
        rows = video_segments(session, video_id, DEFAULT_SAMPLING)
        if video.status != "ok" or not rows:
            raise VideozeroError(
                f"{video.path} has no mined segments (status {video.status}): run `videozero mine` on it."
            )
        segments = [
            SegmentView(
                r.id, r.level, r.start_s, r.end_s, r.saliency, dict(r.saliency_parts or {}), _labels(r.labels)
            )
            for r in rows
        ]
        clip, feats = load_evidence(video, DEFAULT_SAMPLING, cache_dir)
        duration = float(video.duration_s or clip.duration_s)
        path = video.path
    return VideoEvidence(
        video_id, path, duration, clip.frames, clip.timestamps, feats.pooled, feats.motion, segments
    )


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
