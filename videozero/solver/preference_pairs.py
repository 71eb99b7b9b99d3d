"""Factorized preference pairs (D2VLM): for one question, the training label's evidence and answer as the
chosen response, and rejected responses in which exactly one factor, or both, were perturbed.

Factors:
- `grounding`: the right answer with wrong evidence: a span `shift`ed off the evidence, `shrink`ed inside
  it, `stretch`ed past it, moved to another mined `event` of the same video, or a `rollout`'s span (a
  solver answer whose evidence missed);
- `answer`: the right evidence with a wrong answer: a `distractor` (another option, another order, a
  nearby number) or a `rollout`'s wrong answer;
- `both`: a rollout wrong in both, else a grounding and an answer perturbation together.

Real rollouts are taken before synthetic perturbations. Both responses are rendered in the answer format
(`render_answer`, spans at 0.1 s, no think text), so a rejected response differs from the chosen one only
in the tokens of its factor's block. "Wrong evidence" means a temporal IoU with the label's evidence of at
most `MAX_GROUNDING_IOU`, measured on the spans as rendered; "wrong answer" means a different canonical
answer (`rewards.canonical_answer`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from videozero.answer_format import parse_answer, render_answer
from videozero.question_prompt import answer_kind
from videozero.rewards import Span, canonical_answer, normalise_number, temporal_iou
from videozero.scoring import stored_label

FACTORS = ("grounding", "answer", "both")
GROUNDING_SOURCES = ("shift", "shrink", "stretch", "event")
MAX_GROUNDING_IOU = 0.3
"""A rejected response's evidence overlaps the label's by at most this IoU (it points elsewhere)."""


@dataclass(frozen=True)
class PairLabel:
    """What a question trains on (`scoring.training_label`) and what its answer can be."""

    answer: str
    spans: tuple[Span, ...]
    kind: str  # option | permutation | number | text
    options: tuple[str, ...] = ()
    duration: float | None = None


@dataclass(frozen=True)
class RolloutAnswer:
    """A well-formed solver answer to the question (a stored `full` attempt)."""

    attempt_id: int
    answer: str
    spans: tuple[Span, ...]


@dataclass(frozen=True)
class PreferencePair:
    """One chosen/rejected pair of a question, typed by the factor its rejected response perturbs."""

    question_id: int
    factor: str
    source: str  # rollout | shift | shrink | stretch | event | distractor | <grounding source>+distractor
    chosen: str
    rejected: str
    rejected_answer: str
    rejected_spans: tuple[Span, ...]
    attempt_id: int | None = None


def rendered(spans: Sequence[Span], duration: float | None = None) -> tuple[Span, ...]:
    """Spans as the answer format writes them (0.1 s) and as a reader of that text gets them back (within
    the video), so that checks see what the model is shown.

    >>> rendered([(1.04, 2.26)]), rendered([(4.0, 5.48)], duration=5.46)
    (((1.0, 2.3),), ((4.0, 5.46),))
    """
    return tuple(_clamp((round(float(s), 1), round(float(e), 1)), duration) for s, e in spans)


def wrong_grounding(spans: Sequence[Span], label: Sequence[Span], duration: float | None = None) -> bool:
    """Whether `spans` point away from `label`: each with length, and IoU at most MAX_GROUNDING_IOU (as
    rendered and read back)."""
    spans = rendered(spans, duration)
    return (
        bool(spans)
        and all(e > s for s, e in spans)
        and temporal_iou(spans, rendered(label, duration)) <= MAX_GROUNDING_IOU
    )


def wrong_answer(answer: str, label: PairLabel) -> bool:
    """Whether `answer` is a different, readable answer of the label's kind."""
    ours = canonical_answer(answer, label.kind)
    return ours is not None and ours != canonical_answer(label.answer, label.kind)


def _clamp(span: Span, duration: float | None) -> Span:
    s, e = max(0.0, span[0]), max(0.0, span[1])
    if duration is not None:
        s, e = min(s, duration), min(e, duration)
    return s, e


def grounding_perturbations(label: PairLabel, events: Sequence[Span]) -> list[tuple[str, tuple[Span, ...]]]:
    """(source, spans) of each synthetic wrong evidence for `label` that really points elsewhere."""
    spans, d = label.spans, label.duration
    out: list[tuple[str, tuple[Span, ...]]] = []
    if spans:
        end = max(e for _, e in spans)
        start = min(s for s, _ in spans)
        width = end - start
        # shift the whole evidence past itself, forwards when the video has room, else backwards
        gap = max(width, 1.0) + 0.5
        if d is None or end + gap <= d:
            out.append(("shift", tuple(_clamp((s + gap, e + gap), d) for s, e in spans)))
        elif start - gap >= 0:
            out.append(("shift", tuple(_clamp((s - gap, e - gap), d) for s, e in spans)))
        # shrink each span to its first fifth
        out.append(("shrink", tuple((s, s + 0.2 * (e - s)) for s, e in spans)))
        # stretch the evidence to four times its extent, centred on it
        mid = (start + end) / 2
        out.append(("stretch", (_clamp((mid - 2 * max(width, 0.5), mid + 2 * max(width, 0.5)), d),)))
    for event in events:  # another mined event of the same video
        out.append(("event", (_clamp(event, d),)))
    return [(source, s) for source, s in out if wrong_grounding(s, spans, d)]


def answer_perturbations(label: PairLabel) -> list[str]:
    """Synthetic wrong answers: the other options, other orders, nearby counts (none for free text)."""
    found: list[str] = []
    if label.kind == "option":
        letters = [chr(65 + i) for i in range(len(label.options))]
        found = [x for x in letters if x != canonical_answer(label.answer, "option")]
    elif label.kind == "permutation":
        items = [x.strip() for x in label.answer.split(",") if x.strip()]
        if len(items) > 1:
            found = [", ".join(items[::-1]), ", ".join(items[1:] + items[:1])]
    elif label.kind == "number":
        value = normalise_number(label.answer)
        if value is not None:
            found = [f"{value + step:g}" for step in (1, -1, 2) if value + step >= 0]
    return [x for i, x in enumerate(found) if wrong_answer(x, label) and x not in found[:i]]


def factor_candidates(
    label: PairLabel, rollouts: Sequence[RolloutAnswer], events: Sequence[Span], rng: np.random.Generator
) -> dict[str, list[tuple[str, str, tuple[Span, ...], int | None]]]:
    """Per factor, the rejected (source, answer, spans, attempt id) candidates: rollouts first (shuffled),
    then synthetic perturbations (shuffled)."""
    real: dict[str, list] = {f: [] for f in FACTORS}
    for r in rollouts:
        bad_span, bad_answer = (
            wrong_grounding(r.spans, label.spans, label.duration),
            wrong_answer(r.answer, label),
        )
        if bad_span and not bad_answer:  # right answer, wrong evidence: keep its span only
            real["grounding"].append(("rollout", label.answer, r.spans, r.attempt_id))
        if bad_answer:
            real["answer"].append(("rollout", r.answer, label.spans, r.attempt_id))
        if bad_answer and bad_span:
            real["both"].append(("rollout", r.answer, r.spans, r.attempt_id))
    spans = grounding_perturbations(label, events)
    answers = answer_perturbations(label)
    synthetic: dict[str, list] = {
        "grounding": [(src, label.answer, s, None) for src, s in spans],
        "answer": [("distractor", a, label.spans, None) for a in answers],
        "both": [(f"{src}+distractor", a, s, None) for src, s in spans for a in answers],
    }
    out = {}
    for f in FACTORS:
        first = [real[f][i] for i in rng.permutation(len(real[f]))]
        then = [synthetic[f][i] for i in rng.permutation(len(synthetic[f]))]
        out[f] = first + then
    return out


def question_pairs(
    question_id: int,
    label: PairLabel,
    rollouts: Sequence[RolloutAnswer],
    events: Sequence[Span],
    per_question: int,
    rng: np.random.Generator,
    factors: Sequence[str] = FACTORS,
) -> list[PreferencePair]:
    """Up to `per_question` pairs of one question, taking the factors in turn (grounding, answer, both),
    each factor's rollouts before its perturbations; no rejected response twice. A label whose evidence
    has no length (a consensus on one instant) gives none."""
    if (
        not any(e > s for s, e in rendered(label.spans, label.duration))
        or canonical_answer(label.answer, label.kind) is None
    ):
        return []  # nothing to prefer: no evidence of any length, or no readable answer
    chosen = render_answer(rendered(label.spans), label.answer)
    candidates = factor_candidates(label, rollouts, events, rng)
    queues = {f: list(candidates[f]) for f in factors}
    pairs: list[PreferencePair] = []
    seen = {chosen}
    while len(pairs) < per_question and any(queues.values()):
        for f in factors:
            while queues[f] and len(pairs) < per_question:
                source, answer, spans, attempt = queues[f].pop(0)
                rejected = render_answer(rendered(spans), answer)
                if rejected in seen:
                    continue
                seen.add(rejected)
                pairs.append(
                    PreferencePair(
                        question_id,
                        f,
                        source,
                        chosen,
                        rejected,
                        answer,
                        rendered(spans, label.duration),
                        attempt,
                    )
                )
                break
    return pairs


def factor_counts(pairs: Sequence[PreferencePair]) -> dict[str, int]:
    """How many of `pairs` each factor has (every factor named)."""
    return {f: sum(p.factor == f for p in pairs) for f in FACTORS}


def differs_in(pair: PreferencePair | Any, label: PairLabel) -> str | None:
    """The factor in which `pair`'s rejected response differs from its chosen one (anything with `chosen`
    and `rejected` texts, a stored row too), judged from the texts as a reader parses them (None: it
    differs in neither, or its format breaks).

    The answer differs when its canonical answer does; the grounding differs when its spans point away
    from the chosen ones (IoU at most MAX_GROUNDING_IOU)."""
    chosen, rejected = parse_answer(pair.chosen, label.duration), parse_answer(pair.rejected, label.duration)
    if not (chosen.format_ok and rejected.format_ok) or chosen.think != rejected.think:
        return None
    answer_differs = canonical_answer(rejected.answer, label.kind) != canonical_answer(
        chosen.answer, label.kind
    )
    same_spans = rejected.spans == chosen.spans
    spans_differ = wrong_grounding(rejected.spans, chosen.spans, label.duration)
    if answer_differs and same_spans:
        return "answer"
    if spans_differ and not answer_differs and rejected.answer == chosen.answer:
        return "grounding"
    if answer_differs and spans_differ:
        return "both"
    return None


def pair_label(row: dict, label_mode: str = "auto") -> PairLabel | None:
    """The label a stored question (a `store.preferences.round_pair_inputs` row) trains on, or None when
    it has no answer or no evidence to prefer."""
    answer, spans, _ = stored_label(row, label_mode)
    if answer is None or not spans:
        return None
    duration = row.get("duration_s")
    return PairLabel(
        str(answer),
        tuple(spans),
        answer_kind(row.get("options"), row.get("spec")),
        tuple(str(o) for o in row.get("options") or ()),
        None if duration is None else float(duration),
    )


def _spans(value: object) -> tuple[Span, ...]:
    """`value` as spans if it is a list of [start, end] finite numbers, else ()."""
    try:
        spans = tuple((float(s), float(e)) for s, e in value or ())  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return ()
    return spans if all(map(math.isfinite, sum(spans, ()))) else ()


def stored_question_pairs(
    row: dict, per_question: int, seed: Sequence[int], label_mode: str = "auto"
) -> list[PreferencePair]:
    """The pairs of one stored question (a `round_pair_inputs` row: its rollouts and its video's events),
    drawn with a generator seeded by `seed` and the question's id (the same pairs whatever the order).
    Stored spans are untrusted (a model's consensus, an edited row): a label or rollout whose spans are not
    pairs of finite numbers is left out."""
    try:
        label = pair_label(row, label_mode)
    except (TypeError, ValueError):
        return []
    if label is None or per_question == 0 or not all(map(math.isfinite, sum(label.spans, ()))):
        return []
    rollouts = []
    for r in row.get("rollouts") or ():
        spans = _spans(r.get("spans"))
        if r.get("answer") and spans:
            rollouts.append(RolloutAnswer(int(r["id"]), str(r["answer"]), spans))
    events = [(float(s), float(e)) for s, e in row.get("events") or ()]
    rng = np.random.default_rng([*seed, int(row["id"])])
    return question_pairs(int(row["id"]), label, rollouts, events, per_question, rng)
