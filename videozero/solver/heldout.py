"""Held-out scores of a solver on verifiable questions: mean reward, accuracy, IoU, format rate, per family.

Greedy decoding (one answer per question) is the evaluation protocol of the method; sampled decoding
(k answers per question) measures the policy's expected reward, which is smoother on small sets and is
what the learning test compares. The standard error across questions is reported so a change can be
judged against the noise of the held-out set.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from videozero.answer_format import ANSWER_END
from videozero.models.engines.base import GenerationEngine, SamplingParams
from videozero.rewards import RewardWeights
from videozero.solver.rollout import SolverQuestion, score_samples


@dataclass
class HeldoutScores:
    """Means over questions (each question's score is the mean over its answers), per family too."""

    reward: float
    accuracy: float
    iou: float
    format_rate: float
    per_question: list[float]
    families: dict[str, dict[str, float]] = field(default_factory=dict)
    per_question_accuracy: list[float] = field(default_factory=list)
    # answers whose think says the constructed rationale exactly (questions that have one; nan: none)
    rationale: float = math.nan

    @property
    def stderr(self) -> float:
        n = len(self.per_question)
        if n < 2:
            return math.inf
        mean = sum(self.per_question) / n
        var = sum((x - mean) ** 2 for x in self.per_question) / (n - 1)
        return math.sqrt(var / n)


def paired_gain(before: HeldoutScores, after: HeldoutScores) -> tuple[float, float]:
    """(mean gain in reward per question, its standard error) between two scorings of the same questions."""
    diffs = [b - a for a, b in zip(before.per_question, after.per_question, strict=True)]
    n = len(diffs)
    mean = sum(diffs) / n
    if n < 2:
        return mean, math.inf
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    return mean, math.sqrt(var / n)


def heldout_scores(
    engine: GenerationEngine,
    questions: Sequence[SolverQuestion],
    weights: RewardWeights | None = None,
    samples: int = 1,
    temperature: float = 0.0,
    max_new_tokens: int = 40,
    seed: int = 1234,
) -> HeldoutScores:
    """Score `questions` against their constructed answers and evidence."""
    weights = weights or RewardWeights()
    params = SamplingParams(
        n=samples,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        seed=seed if temperature > 0 else None,
        stop=(ANSWER_END,),
    )
    generated = engine.generate([q.request for q in questions], params)
    per_q: list[float] = []
    per_q_acc: list[float] = []
    totals = defaultdict(lambda: defaultdict(float))
    for q, outs in zip(questions, generated, strict=True):
        if q.answer is None:
            raise ValueError("held-out questions need a constructed answer")
        scored = score_samples(outs, q.answer, q.evidence, q.kind, weights, q.duration)
        k = len(scored)
        part = {
            "reward": sum(s.reward.total for s in scored) / k,
            "accuracy": sum(s.reward.accuracy for s in scored) / k,
            "iou": sum(s.reward.alignment for s in scored) / k,
            "format": sum(s.parsed.format_ok for s in scored) / k,
        }
        per_q.append(part["reward"])
        per_q_acc.append(part["accuracy"])
        for fam in {"all", q.family or "all"}:
            for key, value in part.items():
                totals[fam][key] += value
            totals[fam]["n"] += 1
            if q.rationale:  # the first hops, said right (template questions that have them)
                totals[fam]["rationale"] += (
                    sum(_said(s.parsed.think) == _said(q.rationale) for s in scored) / k
                )
                totals[fam]["with_rationale"] += 1
    families = {fam: _means(t) for fam, t in totals.items() if fam != "all"}
    allt = totals["all"]
    n = max(1.0, allt["n"])
    said = allt["rationale"] / allt["with_rationale"] if allt["with_rationale"] else math.nan
    return HeldoutScores(
        reward=allt["reward"] / n,
        accuracy=allt["accuracy"] / n,
        iou=allt["iou"] / n,
        format_rate=allt["format"] / n,
        per_question=per_q,
        families=families,
        per_question_accuracy=per_q_acc,
        rationale=said,
    )


def _said(text: str) -> str:
    return " ".join(text.split())


def _means(t: dict[str, float]) -> dict[str, float]:
    """A family's totals as means: `rationale` over the questions that have one, the rest over all."""
    out = {
        key: (v / t["n"] if key != "n" else v)
        for key, v in t.items()
        if key not in ("rationale", "with_rationale")
    }
    if t.get("with_rationale"):
        out["rationale"] = t["rationale"] / t["with_rationale"]
    return out
