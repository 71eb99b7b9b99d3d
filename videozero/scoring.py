"""The solver's reward contract: one pure scorer of (completion text, label) -> reward parts, and the one
rule for which label a question trains on.

Every place that scores a solver answer goes through `score_completion`: the local GRPO trainer (which is
handed a `SolverScorer`, see `solver_scorer`), held-out evaluation, verification, and the adapters of the
external trainers (`solver.external_rewards` for verl and TRL, `solver.openrlhf.reward` for OpenRLHF) that
read the labels `export` writes. As verl's `compute_score` and TRL's reward callables do, it takes plain
values only: no model, no store.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from videozero.answer_format import ParsedAnswer, parse_answer
from videozero.errors import VideozeroError
from videozero.rewards import RewardWeights, SolverReward, Span, solver_reward

LABEL_MODES = ("auto", "constructed", "consensus")


@dataclass(frozen=True)
class Label:
    """What a completion is scored against: the training answer and evidence spans (None: no target, so
    only the format counts), the answer kind, and the video's duration (spans are read within it)."""

    answer: str | None
    evidence: tuple[Span, ...] = ()
    kind: str = "option"
    duration: float | None = None

    @classmethod
    def from_json(cls, value: Any) -> Label:
        """The label of an exported row as a trainer hands it back: the JSON string `export` wrote (or
        that JSON already decoded); a value that is not one is refused in one sentence."""
        return cls.from_export(exported_label(value))

    @classmethod
    def from_export(cls, data: Mapping[str, Any]) -> Label:
        """The label of an exported row (`export.to_shape`'s JSON label, decoded)."""
        spans = tuple((float(s), float(e)) for s, e in data.get("evidence") or [])
        duration = data.get("duration")
        return cls(
            None if data.get("answer") is None else str(data["answer"]),
            spans,
            str(data.get("answer_kind") or "option"),
            None if duration is None else float(duration),
        )


def exported_label(value: Any) -> dict[str, Any]:
    """An exported row's label decoded (`export.to_shape` writes it as JSON), with its answer checked.

    >>> exported_label('{"answer": "B", "evidence": [[1, 2]]}')["answer"]
    'B'
    """
    data = value
    if not isinstance(value, dict):
        try:
            data = json.loads(value)
        except (TypeError, json.JSONDecodeError):
            data = None
    if not isinstance(data, dict) or data.get("answer") is None:
        raise VideozeroError(
            f"label {str(value)[:80]!r} is not a label `videozero qa export` writes (JSON with an answer): "
            "export the data again."
        )
    return data


@dataclass(frozen=True)
class Scored:
    """A completion as the parser read it, and its reward parts (format, accuracy, alignment, total)."""

    parsed: ParsedAnswer
    reward: SolverReward


SolverScorer = Callable[[str, Label], Scored]


def score_completion(text: str, label: Label, weights: RewardWeights | None = None) -> Scored:
    """r_S of one completion: w_fmt * format + Acc * (1 + alpha * IoU) against `label`; with no label
    answer, the format term alone.

    >>> s = score_completion("<think>x</think><evidence>[2.0, 4.0]</evidence><answer>B</answer>",
    ...                      Label("B", ((2.0, 4.0),), "option", 10.0))
    >>> s.parsed.answer, s.reward.accuracy, s.reward.alignment, s.reward.total
    ('B', 1.0, 1.0, 2.2)
    >>> score_completion("no format", Label(None)).reward.total
    0.0
    """
    w = weights or RewardWeights()
    parsed = parse_answer(text, label.duration)
    if label.answer is None:
        fmt = 1.0 if parsed.format_ok else 0.0
        return Scored(parsed, SolverReward(fmt, 0.0, 0.0, w.w_fmt * fmt))
    reward = solver_reward(
        parsed.format_ok,
        parsed.answer,
        parsed.spans,
        label.answer,
        label.evidence,
        label.kind,
        w,
        label.duration,
    )
    return Scored(parsed, reward)


def solver_scorer(weights: RewardWeights | None = None) -> SolverScorer:
    """`score_completion` with fixed reward weights: what a trainer is handed."""
    return functools.partial(score_completion, weights=weights or RewardWeights())


def training_label(
    constructed: str | None,
    evidence: Sequence[Sequence[float]],
    consensus: str | None,
    consensus_evidence: Sequence[Sequence[float]] | None,
    writer: str,
    label_mode: str = "auto",
) -> tuple[str | None, tuple[Span, ...], str]:
    """(answer, evidence, source) a question trains on: `constructed` (the answer known by construction,
    the questioner's own for model-written questions), `consensus` (the solver's majority vote and
    consensus span), or `auto` (constructed for template questions, consensus for model-written ones).
    Either falls back to the other when it is missing; source is 'none' when both are.

    >>> training_label("B", [[1, 2]], "A", [[0.5, 1]], "model")
    ('A', ((0.5, 1.0),), 'consensus')
    >>> training_label("B", [[1, 2]], "A", None, "template"), training_label(None, [], None, None, "model")
    (('B', ((1.0, 2.0),), 'constructed'), (None, (), 'none'))
    """
    if label_mode not in LABEL_MODES:
        raise VideozeroError(f"Unknown label mode '{label_mode}': use one of {', '.join(LABEL_MODES)}.")
    spans = tuple((float(s), float(e)) for s, e in evidence or ())
    agreed = tuple((float(s), float(e)) for s, e in consensus_evidence or ())
    use_consensus = label_mode == "consensus" or (label_mode == "auto" and writer == "model")
    if use_consensus and consensus is not None:
        return consensus, agreed or spans, "consensus"
    if constructed is None:
        return (consensus, agreed, "consensus") if consensus is not None else (None, (), "none")
    return constructed, spans, "constructed"


def stored_label(
    row: Mapping[str, Any], label_mode: str = "auto"
) -> tuple[str | None, tuple[Span, ...], str]:
    """`training_label` of a stored question row (its `answer`, `evidence`, `consensus_answer`,
    `consensus_evidence` and `writer` fields): what exports and preference pairs take as its label."""
    return training_label(
        row.get("answer"),
        row.get("evidence") or [],
        row.get("consensus_answer"),
        row.get("consensus_evidence"),
        str(row.get("writer") or "template"),
        label_mode,
    )
