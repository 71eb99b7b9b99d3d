"""Evaluate a model on a benchmark: find its videos, decode them at the evaluation protocol's sampling,
generate one greedy answer per item, and score the answers with the benchmark's official figures.

The protocol follows the method's authors: frames at 2 fps, at most 32 per video, greedy decoding.
ASL grounding items carry a query clip (the sign, from the partner video); it is shown to the model as
a few labelled still frames beside the video, so the video input stays the one being grounded in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from videozero.errors import VideozeroError
from videozero.evaluation.benchmarks import GroundingItem, Prediction, benchmark_items, score
from videozero.evaluation.zoom import zoom_answers
from videozero.models.engines.base import GenerationEngine
from videozero.models.eval_config import EvalConfig
from videozero.models.prompt import Request, VideoInput
from videozero.video.cache import VideoCache, load_clip
from videozero.video.decode import VideoClip
from videozero.video.zoom import DenseSources


def query_stills(clip: VideoClip, n: int) -> tuple[tuple[str, np.ndarray], ...]:
    """Up to `n` evenly spaced frames of a query clip, labelled with their order and time in the clip."""
    if len(clip) == 0:
        raise VideozeroError(f"the query clip from {clip.path} holds no frames: rebuild the benchmark.")
    picks = np.unique(np.linspace(0, len(clip) - 1, min(n, len(clip))).round().astype(int))
    return tuple(
        (f"query clip frame {k + 1} at {clip.timestamps[i]:.1f} s", clip.frames[i])
        for k, i in enumerate(picks)
    )


def item_request(
    item: GroundingItem, config: EvalConfig, cache: VideoCache | None = None
) -> tuple[Request, float]:
    """The request a model answers for one benchmark item, and the video's duration (for the parser)."""
    if item.video_path is None:
        raise VideozeroError(f"item {item.item_id} has no video: resolve its videos first.")
    clip = load_clip(item.video_path, config.sampling, cache)
    images: tuple[tuple[str, np.ndarray], ...] = ()
    if "query_span" in item.extra:
        from videozero.evaluation.asl_grounding import query_clip

        images = query_stills(query_clip(item, config.sampling), config.query_frames)
    duration = item.duration if item.duration is not None else clip.duration_s
    return Request(item.prompt(), VideoInput.from_clip(clip), images=images), float(duration)


@dataclass
class BenchmarkResult:
    """The figures of one benchmark run, the predictions behind them, and what was skipped."""

    benchmark: str
    figures: dict[str, float]
    predictions: dict[str, Prediction]
    outputs: dict[str, str]
    videos: str
    notes: list[str] = field(default_factory=list)


def evaluate_items(
    engine: GenerationEngine,
    name: str,
    items: Sequence[GroundingItem],
    config: EvalConfig | None = None,
    cache: VideoCache | None = None,
    progress: Callable[[int, int], None] | None = None,
    records: dict[str, Any] | None = None,
) -> tuple[dict[str, float], dict[str, Prediction], dict[str, str]]:
    """Greedy answers for `items` in batches (with zoom when `config.zoom.mode` says so; each item's zoom
    record then goes to `records`), parsed into predictions and scored with the official figures."""
    config = config or EvalConfig()
    predictions: dict[str, Prediction] = {}
    outputs: dict[str, str] = {}
    dense = DenseSources(config.zoom.fps, config.short_side, cache)  # what the zoom modes zoom into
    for start in range(0, len(items), config.batch_size):
        chunk = items[start : start + config.batch_size]
        built = [item_request(item, config, cache) for item in chunk]
        if config.zoom.mode == "off":
            texts = [outs[0].text for outs in engine.generate([r for r, _ in built], config.greedy)]
        else:  # coarse-to-fine or the zoom tool, the zoomed frames decoded at the zoom rate
            found = zoom_answers(
                engine,
                [r for r, _ in built],
                [d for _, d in built],
                [item.answer_kind for item in chunk],
                [dense.of(item.video_path) for item in chunk],
                config.zoom,
                config.greedy,
            )
            texts = [text for text, _ in found]
            if records is not None:
                records.update({item.item_id: record for item, (_, record) in zip(chunk, found, strict=True)})
        for item, (_, duration), text in zip(chunk, built, texts, strict=True):
            outputs[item.item_id] = text
            predictions[item.item_id] = Prediction.from_output(text, duration)
        if progress is not None:
            progress(start + len(chunk), len(items))
    return score(name, items, predictions), predictions, outputs


def evaluate_benchmark(
    engine: GenerationEngine,
    name: str,
    annotations: Path,
    videos_dir: Path | None = None,
    config: EvalConfig | None = None,
    cache: VideoCache | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BenchmarkResult:
    """Read benchmark `name`, skip (and report) items without a video, evaluate the rest."""
    config = config or EvalConfig()
    items, summary, notes = benchmark_items(name, annotations, videos_dir, config.limit)
    figures, predictions, outputs = evaluate_items(engine, name, items, config, cache, progress)
    return BenchmarkResult(name, figures, predictions, outputs, summary, notes)
