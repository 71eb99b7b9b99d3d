"""Evaluation: official benchmark metrics, real benchmark readers, and the ASL grounding benchmark."""

from videozero.evaluation.benchmarks import (
    BENCHMARKS,
    BenchmarkSet,
    GroundingItem,
    Prediction,
    VideoResolution,
    default_annotations,
    load_benchmark,
    resolve_videos,
    score,
)

__all__ = [
    "BENCHMARKS",
    "BenchmarkSet",
    "GroundingItem",
    "Prediction",
    "VideoResolution",
    "default_annotations",
    "load_benchmark",
    "resolve_videos",
    "score",
]
