"""Questioner warm-up: supervised writes in the writer's format, before the questioner's GRPO.

Zero-shot, nano writes no parseable question, so the questioner's GRPO would train on its format anchor
alone. Writes whose evidence, question, options and answer are known by construction are free
supervised targets on the run's training videos: the template families whose options are words
(`semantic_grounding`: spans; `counting`: counts) and the miner's label writes on the very spans the
model writer is shown in rounds (`model_writer.format_target`). Each target is paired with the writer
request for its evidence, as `writer.writer_input` builds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from videozero.evidence.views import EvidenceLoader, VideoEvidence
from videozero.models.prompt import VideoInput
from videozero.questioner.candidate import Candidate
from videozero.questioner.families import MAX_LEVEL, propose
from videozero.questioner.model_writer import format_target, writer_inputs
from videozero.questioner.warmup_config import WriterWarmupConfig
from videozero.questioner.writer import WriterInput, parse_written, render_written, writer_input
from videozero.rewards import temporal_iou
from videozero.video.cache import VideoCache, load_clip
from videozero.video.decode import SamplingConfig

WRITTEN_FAMILIES = ("semantic_grounding", "counting")


def _count_options(n: int, rng: np.random.Generator) -> tuple[list[str], str]:
    """Three consecutive counts holding `n`, lowest at least 0; the answer is `n`'s letter."""
    low = max(0, n - int(rng.integers(0, 3)))
    options = [str(k) for k in range(low, low + 3)]
    return options, "ABC"[options.index(str(n))]


def written_target(c: Candidate, rng: np.random.Generator) -> str | None:
    """A template candidate as a write in the writer's format; None for families a write cannot carry."""
    if c.family == "semantic_grounding" and c.options:
        return render_written(list(c.evidence), c.text, list(c.options), c.answer)
    if c.family == "counting":
        options, answer = _count_options(int(c.answer), rng)
        return render_written(list(c.evidence), c.text, options, answer)
    return None


def _hints(ev: VideoEvidence, spans: Sequence[tuple[float, float]]) -> list[str]:
    """Labels of the mined segments overlapping `spans`, most overlapping first (what a writer is told)."""
    segs = [s for s in ev.of_level("event", "shot") if s.labels and temporal_iou([s.span], list(spans)) > 0]
    segs.sort(key=lambda s: -temporal_iou([s.span], list(spans)))
    return [n for s in segs for n, _ in s.labels]


def video_writer_inputs(
    evidence: EvidenceLoader,
    video_ids: Sequence[int],
    sampling: SamplingConfig,
    spans: int,
    cache_dir: str | Path | None = None,
) -> list[WriterInput]:
    """The writer requests a round would make on the videos (`spans` evidence choices each)."""
    cache = VideoCache(cache_dir) if cache_dir is not None else None
    out: list[WriterInput] = []
    for video_id in video_ids:
        ev = evidence(video_id)
        out += writer_inputs(ev, VideoInput.from_clip(load_clip(ev.path, sampling, cache)), spans)
    return out


def writer_targets(
    evidence: EvidenceLoader,
    video_ids: Sequence[int],
    sampling: SamplingConfig,
    per_video: int = 12,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    label_writes: int = 4,
) -> list[tuple[WriterInput, str]]:
    """(writer request, target write) pairs on the videos: `per_video` template writes spread over
    `WRITTEN_FAMILIES` and the levels, plus up to `label_writes` label writes on the spans the model
    writer is shown in rounds."""
    cache = VideoCache(cache_dir) if cache_dir is not None else None
    rng = np.random.default_rng(seed)
    per_level = max(1, round(per_video / (len(WRITTEN_FAMILIES) * (MAX_LEVEL + 1))))
    out: list[tuple[WriterInput, str]] = []
    for video_id in video_ids:
        ev = evidence(video_id)
        video = VideoInput.from_clip(load_clip(ev.path, sampling, cache))
        seen: set[str] = set()
        for level in range(MAX_LEVEL + 1):
            counts = dict.fromkeys(WRITTEN_FAMILIES, per_level)
            for c in propose(ev, counts, dict.fromkeys(counts, level), seed=seed * 1_000_003 + level):
                target = written_target(c, rng)
                if target is None or target in seen:
                    continue
                seen.add(target)
                request = writer_input(
                    video, ev.duration, c.evidence, c.segment_ids, level, _hints(ev, c.evidence)
                )
                out.append((request, target))
        for inp in writer_inputs(ev, video, label_writes):
            out.append((inp, format_target(ev, inp.spans, rng)))
    # only writes the loop itself would accept as parsed (a label write on a short video may lack options)
    return [(inp, t) for inp, t in out if parse_written(t, inp.duration, inp.spans).reject_reason is None]


def warm_up_writer(lm, pairs: Sequence[tuple[WriterInput, str]], config: WriterWarmupConfig, progress=None):
    """Supervised steps on the (writer request, target write) pairs; `lm.model` is trained in place
    (its projector stays as it is: the questioner reads frames as the solver does)."""
    from videozero.solver.warmup import supervised_steps
    from videozero.solver.warmup_config import WarmupConfig

    steps = WarmupConfig(
        steps=config.steps,
        batch_size=config.batch_size,
        micro_batch_size=config.micro_batch_size,
        lr=config.lr,
        projector_lr=0.0,
        lora=config.lora,
        seed=config.seed,
    )
    return supervised_steps(lm, [p.request for p, _ in pairs], [t for _, t in pairs], steps, progress)


def write_rates(engine, inputs: Sequence[WriterInput], max_new_tokens: int = 120) -> dict[str, float]:
    """Greedy writes on `inputs`: the share that parse (`parsed`), and the share that parse, are about
    the requested evidence (IoU at least 0.5) and are not the prompt's example copied (`on_evidence`)."""
    from videozero.questioner.writer import (
        WRITER_FORMAT_EXAMPLE,
        WriterConfig,
        parse_written,
        write_questions,
    )

    if not inputs:
        return {"parsed": float("nan"), "on_evidence": float("nan"), "writes": 0}
    example = parse_written(WRITER_FORMAT_EXAMPLE, 1e9, [(12.0, 15.5)]).text
    config = WriterConfig(n=1, temperature=0.0, max_new_tokens=max_new_tokens)
    parsed = on = 0
    for inp, group in zip(inputs, write_questions(engine, inputs, config), strict=True):
        for w in group:
            c = w.candidate
            if (c.reject_reason or "").startswith("unparseable"):
                continue
            parsed += 1
            on += c.text != example and temporal_iou(list(c.evidence), list(inp.spans)) >= 0.5
    n = len(inputs)
    return {"parsed": parsed / n, "on_evidence": on / n, "writes": n}
