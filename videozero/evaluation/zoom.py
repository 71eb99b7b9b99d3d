"""Answering with zoom at evaluation (`eval.zoom.mode`): Zoom-Zero's coarse-to-fine inference or
VideoZoomer's multi-turn tool, each returning the answer kept and a record of what was done.

Coarse-to-fine: answer on the overview, with a confidence: `agreement` (the share of `samples` sampled
answers that agree with their majority, by the loop's own vote `pseudo_label.majority_vote`; the
majority's first well-formed answer is kept) or
`probability` (the greedy answer tokens' joint probability, <answer> tags included). Where the
confidence is under `threshold`, the frames inside that answer's spans are decoded at the zoom rate
(`video.zoom`; the whole video spread evenly when its spans hold none) and the question asked again on
them alone; the more confident of the two answers is kept (the coarse one on ties).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from videozero.answer_format import ParsedAnswer, parse_answer
from videozero.errors import VideozeroError
from videozero.models.engines.base import GenerationEngine, Sample, SamplingParams
from videozero.models.prompt import TokenRegion, completion_regions
from videozero.models.request import Request
from videozero.rewards import canonical_answer
from videozero.solver.pseudo_label import Rollout, majority_vote
from videozero.solver.zoom_tool import ZoomSource, run_tool, tool_request
from videozero.video.zoom import zoom_view
from videozero.zoom_config import ZoomEvalSettings


@dataclass(frozen=True)
class ConfidentAnswer:
    """One answer kept for a request and how confident the model was in it."""

    text: str
    parsed: ParsedAnswer
    confidence: float

    def as_record(self) -> dict[str, Any]:
        return {
            "output": self.text,
            "answer": self.parsed.answer,
            "spans": [list(s) for s in self.parsed.spans],
            "confidence": round(self.confidence, 4),
        }


def answer_probability(tokenizer: Any, sample: Sample) -> float:
    """The joint probability of a sample's <answer> tokens (0 without an answer or log-probs)."""
    if not sample.logprobs:
        return 0.0
    regions = completion_regions(tokenizer, sample.token_ids)
    picked = [lp for lp, r in zip(sample.logprobs, regions, strict=False) if r == int(TokenRegion.ANSWER)]
    return math.exp(sum(picked)) if picked else 0.0


def confident_answers(
    engine: GenerationEngine,
    requests: Sequence[Request],
    durations: Sequence[float],
    kinds: Sequence[str],
    settings: ZoomEvalSettings,
    greedy: SamplingParams,
) -> list[ConfidentAnswer]:
    """An answer to each request with its confidence under `settings.confidence`."""
    if settings.confidence == "agreement":
        params = replace(greedy, n=settings.samples, temperature=1.0, seed=greedy.seed or 0)
    else:
        tokenizer = getattr(getattr(engine, "lm", None), "tokenizer", None)
        if tokenizer is None:
            raise VideozeroError(
                "this engine gives no tokenizer to find the answer tokens with: set eval.zoom.confidence "
                "to agreement."
            )
        params = replace(greedy, logprobs=True)
    out = []
    for samples, duration, kind in zip(
        engine.generate(list(requests), params), durations, kinds, strict=True
    ):
        parsed = [parse_answer(s.text, duration) for s in samples]
        if settings.confidence == "probability":
            out.append(ConfidentAnswer(samples[0].text, parsed[0], answer_probability(tokenizer, samples[0])))
            continue
        label = majority_vote([Rollout(p.answer, p.spans) for p in parsed], kind)  # the loop's own vote
        if label.answer is None:
            out.append(ConfidentAnswer(samples[0].text, parsed[0], 0.0))
            continue
        agreeing = [i for i, p in enumerate(parsed) if canonical_answer(p.answer, kind) == label.answer]
        pick = next((i for i in agreeing if parsed[i].format_ok), agreeing[0])
        out.append(ConfidentAnswer(samples[pick].text, parsed[pick], label.agreement))
    return out


def coarse_to_fine(
    engine: GenerationEngine,
    requests: Sequence[Request],
    durations: Sequence[float],
    kinds: Sequence[str],
    sources: Sequence[ZoomSource],
    settings: ZoomEvalSettings,
    greedy: SamplingParams,
) -> list[tuple[str, dict[str, Any]]]:
    """The answer kept for each request and its record (coarse answer, whether and where it zoomed, the
    zoomed answer, which was kept)."""
    coarse = confident_answers(engine, requests, durations, kinds, settings, greedy)
    records: list[dict[str, Any]] = [
        {"coarse": c.as_record(), "zoomed": False, "kept": "coarse"} for c in coarse
    ]
    unsure = [
        i for i, c in enumerate(coarse) if c.confidence < settings.threshold and requests[i].video is not None
    ]
    asked, views = [], []
    for i in unsure:
        source = sources[i]() or requests[i].video
        view = zoom_view(source, coarse[i].parsed.spans, durations[i], settings.max_frames)
        views.append(view)
        asked.append(replace(requests[i], video=view.video))
    fine = (
        confident_answers(
            engine, asked, [durations[i] for i in unsure], [kinds[i] for i in unsure], settings, greedy
        )
        if asked
        else []
    )
    kept = list(coarse)
    for i, view, answer in zip(unsure, views, fine, strict=True):
        records[i] |= {
            "zoomed": True,
            "zoom": answer.as_record() | {"frames": view.times, "fallback": view.fallback},
        }
        if answer.confidence > coarse[i].confidence:
            kept[i] = answer
            records[i]["kept"] = "zoom"
    return [(k.text, r) for k, r in zip(kept, records, strict=True)]


def zoom_answers(
    engine: GenerationEngine,
    requests: Sequence[Request],
    durations: Sequence[float],
    kinds: Sequence[str],
    sources: Sequence[Callable[[], Any]],
    settings: ZoomEvalSettings,
    greedy: SamplingParams,
) -> list[tuple[str, Any]]:
    """(answer text, record) of each request in `settings.mode`: coarse_to_fine, or zoom_tool (greedy
    multi-turn answers; the record is their turns)."""
    if settings.mode == "coarse_to_fine":
        return coarse_to_fine(engine, requests, durations, kinds, sources, settings, greedy)
    if settings.mode == "zoom_tool":
        found = run_tool(
            engine,
            [tool_request(r) for r in requests],
            durations,
            sources,
            replace(greedy, n=1),
            settings.tool,
        )
        return [(group[0].final.text, group[0].record()) for group in found]
    raise VideozeroError(f"eval.zoom.mode is {settings.mode!r}: use coarse_to_fine or zoom_tool to zoom.")
