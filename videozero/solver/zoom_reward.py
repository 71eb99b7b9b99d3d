"""Zoom-Zero's zoom-in accuracy: each rollout's predicted spans are shown again, densely (`video.zoom`), and
a policy (the frozen reference, or the current one without gradients) answers the question from that view
alone; the rollout's `zoom` reward part is 1 when that answer is right. A rollout whose spans hold no frame
is shown frames spread over the whole video, as Zoom-Zero does. Rollouts of one question that point at the
same frames share one answer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from videozero.answer_format import ANSWER_END, parse_answer
from videozero.models.engines.base import GenerationEngine, SamplingParams
from videozero.rewards import RewardWeights, answer_accuracy, with_zoom
from videozero.solver.rollout import QuestionRollouts
from videozero.video.zoom import zoom_view
from videozero.zoom_config import ZoomRewardSettings


def zoom_accuracies(
    engine: GenerationEngine,
    results: Sequence[QuestionRollouts],
    settings: ZoomRewardSettings,
    weights: RewardWeights,
    max_new_tokens: int = 48,
) -> list[list[float]]:
    """The zoom-in accuracy of every rollout of `results` (0 where the question has no target answer or
    is asked without its video), by one greedy answer of `engine` per distinct zoomed view."""
    requests, asked, keys = [], {}, []
    for qi, r in enumerate(results):
        q = r.question
        source = q.zoom_source if q.zoom_source is not None else q.request.video
        row = []
        for s in r.samples:
            if r.target_answer is None or source is None:
                row.append(None)
                continue
            duration = q.duration if q.duration else float(source.timestamps[-1])
            view = zoom_view(source, s.parsed.spans, duration, settings.max_frames, settings.fps)
            key = (qi, tuple(view.times))
            if key not in asked:
                asked[key] = len(requests)
                requests.append(replace(q.request, video=view.video, turns=()))
            row.append(key)
        keys.append(row)
    if not requests:
        return [[0.0] * len(r.samples) for r in results]
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=max_new_tokens, stop=(ANSWER_END,))
    answers = engine.generate(requests, greedy)
    out = []
    for r, row in zip(results, keys, strict=True):
        accs = []
        for key in row:
            if key is None:
                accs.append(0.0)
                continue
            parsed = parse_answer(answers[asked[key]][0].text, r.question.duration)
            accs.append(
                answer_accuracy(parsed.answer, r.target_answer, r.question.kind, weights.number_tolerance)
            )
        out.append(accs)
    return out


def add_zoom_rewards(
    results: Sequence[QuestionRollouts], accuracies: Sequence[Sequence[float]], weights: RewardWeights
) -> None:
    """Add w_zoom x the zoom-in accuracy to each rollout's reward (in place)."""
    for r, accs in zip(results, accuracies, strict=True):
        for s, acc in zip(r.samples, accs, strict=True):
            s.reward = with_zoom(s.reward, acc, weights)
