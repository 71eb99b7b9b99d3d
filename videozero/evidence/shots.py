"""Shot boundaries on the sampled frames: PySceneDetect's content score and its adaptive rule.

PySceneDetect scores the frames mining already decoded (no second pass over the file); the adaptive
rule is applied here so that the first and last frames of a video can be cuts too. Measured against
PySceneDetect's own full-rate pass on Big Buck Bunny (±0.5 s, 2 fps sampling; bench/shots.py), its
adaptive rule scored F1 0.98 where change points on the EfficientNet embedding sequence reached at
best 0.79 (many false cuts on fast motion), so the embedding is kept for saliency, not for cuts.
A cut between sampled frames i-1 and i is placed midway between their timestamps: the true cut lies
somewhere in between, and the midpoint halves the worst-case error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Adaptive rule: a frame is a cut when its content change is this many times the mean change of
# `WINDOW` frames on each side and at least `MIN_CONTENT` (PySceneDetect's HSV change scale, 0-255).
# MIN_CONTENT is ContentDetector's default threshold: with AdaptiveDetector's own floor (15) an object
# filling a tenth of a static frame, seen 0.5 s apart, was taken for a cut.
ADAPTIVE_THRESHOLD = 2.0
MIN_CONTENT = 27.0
WINDOW = 2
# Frames are subsampled to at most this width before detection (PySceneDetect downscales the same way).
DETECT_WIDTH = 200


@dataclass(frozen=True)
class Shot:
    """A shot: sampled frames [first, stop) and its span in seconds."""

    first: int
    stop: int
    start_s: float
    end_s: float


class ContentScorer:
    """PySceneDetect's content change (HSV, 0-255) of sampled frames handed over in order, a block at a
    time (mining scores each block while the next one is decoded), each against the frame before it."""

    def __init__(self) -> None:
        from scenedetect import ContentDetector, StatsManager

        self.stats = StatsManager()
        self.detector = ContentDetector(threshold=255.0, min_scene_len=1)
        self.detector.stats_manager = self.stats
        self.timecodes: list = []

    def add(self, frames: np.ndarray) -> ContentScorer:
        from scenedetect import FrameTimecode

        step = -(-frames.shape[2] // DETECT_WIDTH) if len(frames) else 1  # ceil: at most DETECT_WIDTH wide
        for frame in frames:
            tc = FrameTimecode(len(self.timecodes), fps=1.0)
            self.detector.process_frame(tc, np.ascontiguousarray(frame[::step, ::step, ::-1]))
            self.timecodes.append(tc)
        return self

    def scores(self) -> np.ndarray:
        """The change of every frame added so far (0 for the first)."""
        key = self.detector.FRAME_SCORE_KEY
        return np.array(
            [
                self.stats.get_metrics(tc, [key])[0] or 0.0 if i else 0.0
                for i, tc in enumerate(self.timecodes)
            ],
            np.float64,
        )


def content_scores(frames: np.ndarray) -> np.ndarray:
    """PySceneDetect's content change (HSV, 0-255) of every sampled frame against the one before it
    (0 for the first)."""
    return ContentScorer().add(frames).scores()


def adaptive_cuts(scores: np.ndarray) -> list[int]:
    """Frames whose change is ADAPTIVE_THRESHOLD times the mean change of up to WINDOW frames on each
    side, and at least MIN_CONTENT: PySceneDetect's adaptive rule, with one-sided windows at the ends
    (its detector never judges the first and last WINDOW frames, a whole second at 2 fps).

    >>> adaptive_cuts(np.array([0.0, 40.0, 2.0, 3.0, 2.0, 50.0, 20.0]))
    [1, 5]
    """
    cuts = []
    for i in range(1, len(scores)):
        if scores[i] < MIN_CONTENT:
            continue
        neighbours = np.r_[scores[max(1, i - WINDOW) : i], scores[i + 1 : i + 1 + WINDOW]]
        base = float(neighbours.mean()) if len(neighbours) else 0.0
        if scores[i] >= ADAPTIVE_THRESHOLD * base:
            cuts.append(i)
    return cuts


def shots_from_cuts(cuts: list[int], timestamps: np.ndarray, duration_s: float) -> list[Shot]:
    """Shots between the cuts; the first starts at 0 and the last ends at the video's duration.

    >>> [(s.first, s.stop, s.start_s, s.end_s) for s in shots_from_cuts([2], np.array([0.0, 0.5, 1.0, 1.5]), 2.0)]
    [(0, 2, 0.0, 0.75), (2, 4, 0.75, 2.0)]
    """
    n = len(timestamps)
    edges = [0, *cuts, n]
    times = (
        [0.0]
        + [float(timestamps[c - 1] + timestamps[c]) / 2 for c in cuts]
        + [max(duration_s, float(timestamps[-1]))]
    )
    return [
        Shot(edges[k], edges[k + 1], times[k], times[k + 1])
        for k in range(len(edges) - 1)
        if edges[k + 1] > edges[k]
    ]


def detect_shots(
    frames: np.ndarray, timestamps: np.ndarray, duration_s: float, scores: np.ndarray | None = None
) -> list[Shot]:
    """The shots of a video from its sampled frames and their true timestamps (`scores`: their
    content scores when already computed)."""
    if len(frames) == 0:
        return []
    if scores is None or len(scores) != len(frames):
        scores = content_scores(frames)
    return shots_from_cuts(adaptive_cuts(scores), timestamps, duration_s)
