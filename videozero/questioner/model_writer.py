"""The questioner model as a writer of a round's questions: which evidence it is shown, and the
supervised write that anchors its format.

`evidence_choices` picks the most salient mined spans of a video (events first, then shots) that can
anchor a question; `model_writer` returns the callable `stages.question.propose_round` takes: for
each video, the questioner sees the video with the chosen span marked and writes `WriterConfig.n`
questions per span, every write stored (parsed or rejected with its reason). `format_target` builds,
from the miner's labels and spans alone, a write in the stated format that a supervised anchor can
teach when the writer's parse rate falls (as the solver's format floor).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from videozero.evidence.views import SegmentView, VideoEvidence
from videozero.models.engines.base import GenerationEngine
from videozero.models.prompt import VideoInput
from videozero.question_prompt import option_letter
from videozero.questioner.candidate import Candidate
from videozero.questioner.families import span_text
from videozero.questioner.verify_config import MIN_EVIDENCE_S
from videozero.questioner.writer import (
    WriterConfig,
    WriterInput,
    render_written,
    write_questions,
    writer_input,
)
from videozero.rewards import temporal_iou
from videozero.video.cache import VideoCache, load_clip
from videozero.video.decode import SamplingConfig


def evidence_choices(ev: VideoEvidence, k: int, max_fraction: float = 0.5) -> list[SegmentView]:
    """The `k` most salient event (then shot) segments that are long enough and localised."""
    ok = [
        s
        for s in ev.of_level("event", "shot")
        if s.length >= MIN_EVIDENCE_S and s.length <= max_fraction * ev.duration
    ]
    ok.sort(key=lambda s: (s.level != "event", -s.saliency))
    chosen: list[SegmentView] = []
    for s in ok:
        if all(temporal_iou([s.span], [c.span]) < 0.5 for c in chosen):
            chosen.append(s)
        if len(chosen) == k:
            break
    return chosen


def writer_inputs(ev: VideoEvidence, video: VideoInput, k: int, level: int = 0) -> list[WriterInput]:
    """One writer request per chosen evidence span of `ev`, with the span's labels as hints."""
    return [
        writer_input(
            video,
            ev.duration,
            [seg.span],
            (seg.id,) if seg.id is not None else (),
            level,
            [n for n, _ in seg.labels],
        )
        for seg in evidence_choices(ev, k)
    ]


def model_writer(
    engine: GenerationEngine,
    config: WriterConfig,
    spans_per_video: int,
    sampling: SamplingConfig,
    cache: VideoCache | None = None,
) -> Callable[[VideoEvidence, int], list[Candidate]]:
    """The model writer `propose_round` calls per video: every write becomes a candidate (rejected
    ones keep their raw output and reason)."""

    def write(ev: VideoEvidence, round_id: int) -> list[Candidate]:
        video = VideoInput.from_clip(load_clip(ev.path, sampling, cache))
        inputs = writer_inputs(ev, video, spans_per_video)
        return [w.candidate for group in write_questions(engine, inputs, config) for w in group]

    return write


def format_target(ev: VideoEvidence, spans: Sequence[tuple[float, float]], rng: np.random.Generator) -> str:
    """A write in the stated format about `spans`, from the miner alone: "when is <its top label>
    seen?" with the span and up to two other mined spans as options."""
    span = spans[0]
    seg = max(ev.of_level("event", "shot"), key=lambda s: temporal_iou([s.span], [span]), default=None)
    name = seg.labels[0][0] if seg is not None and seg.labels else "the change"
    others = [
        s.span for s in ev.of_level("event", "shot") if temporal_iou([s.span], [span]) < 0.1 and s.length > 0
    ]
    picks = [others[i] for i in rng.permutation(len(others))[:2]]
    options = [span, *picks]
    order = rng.permutation(len(options))
    answer = option_letter(int(np.flatnonzero(order == 0)[0]))
    return render_written(
        list(spans),
        f"When is something that looks like a {name} seen in the video?",
        [span_text(options[i]) for i in order],
        answer,
    )
