"""Pseudo-supervision from N rollouts: majority vote, agreement, consensus span, the agreement band.

Rules, chosen so that the label is a deterministic function of the rollouts:
- **Vote**: answers are compared in canonical form (`rewards.canonical_answer`); unparseable
  answers cast no vote but still count in the denominator of the agreement, so a question whose
  rollouts mostly fail the format has low agreement.
- **Ties**: among answers with the most votes, the one whose rollouts' spans agree most (highest mean
  pairwise IoU) wins; if still tied, the one given first. Span agreement is the method's own signal
  of a grounded answer, and the first-given rule keeps the vote independent of how answers sort.
- **Consensus span**: the medoid of the winners' spans: the prediction with the highest mean IoU to
  the other winners' predictions (ties: the earliest). Unlike the median start and end, the medoid is
  always a span some rollout actually predicted, and it works unchanged for multi-span evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from videozero.rewards import Span, canonical_answer, temporal_iou


@dataclass(frozen=True)
class Rollout:
    """What one solver sample said: its raw answer and evidence spans (already parsed)."""

    answer: str | None
    spans: tuple[Span, ...] = ()


@dataclass(frozen=True)
class PseudoLabel:
    """The majority answer, its agreement c in [0, 1], the consensus span, and the votes behind them."""

    answer: str | None
    agreement: float
    spans: tuple[Span, ...]
    votes: dict[str, int]
    n: int

    @property
    def r_learn(self) -> float:
        """R-Zero's learnability reward min(c, 1 - c): highest for questions solved half the time."""
        return min(self.agreement, 1.0 - self.agreement)


def _mean_pairwise_iou(span_sets: Sequence[tuple[Span, ...]]) -> list[float]:
    n = len(span_sets)
    if n == 1:
        return [1.0 if span_sets[0] else 0.0]
    return [
        sum(temporal_iou(span_sets[i], span_sets[j]) for j in range(n) if j != i) / (n - 1) for i in range(n)
    ]


def consensus_span(span_sets: Sequence[tuple[Span, ...]]) -> tuple[Span, ...]:
    """The medoid of the given predictions (highest mean IoU to the others; ties: the earliest).

    >>> consensus_span([((0.0, 2.0),), ((1.0, 3.0),), ((1.0, 2.5),), ((8.0, 9.0),)])
    ((1.0, 2.5),)
    >>> consensus_span([])
    ()
    """
    with_spans = [s for s in span_sets if s]
    if not with_spans:
        return ()
    scores = _mean_pairwise_iou(with_spans)
    best = max(range(len(with_spans)), key=lambda i: (scores[i], -i))
    return tuple(with_spans[best])


def majority_vote(rollouts: Sequence[Rollout], kind: str) -> PseudoLabel:
    """Majority answer over `rollouts` with the tie and consensus rules of this module.

    >>> r = [Rollout("B", ((1.0, 2.0),)), Rollout("b", ((1.2, 2.0),)), Rollout("A", ((5.0, 6.0),)), Rollout(None)]
    >>> label = majority_vote(r, "option")
    >>> label.answer, label.agreement, label.spans, label.r_learn
    ('B', 0.5, ((1.0, 2.0),), 0.5)
    >>> majority_vote([], "option").answer is None
    True
    """
    n = len(rollouts)
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rollouts):
        key = canonical_answer(r.answer, kind)
        if key is not None:
            groups.setdefault(key, []).append(i)
    if not groups:
        return PseudoLabel(None, 0.0, (), {}, n)
    top = max(len(members) for members in groups.values())
    tied = [key for key, members in groups.items() if len(members) == top]

    def span_agreement(key: str) -> float:
        sets = [rollouts[i].spans for i in groups[key]]
        return sum(_mean_pairwise_iou(sets)) / len(sets)

    winner = tied[0] if len(tied) == 1 else max(tied, key=lambda k: (span_agreement(k), -groups[k][0]))
    spans = consensus_span([rollouts[i].spans for i in groups[winner]])
    return PseudoLabel(winner, top / n, spans, {k: len(v) for k, v in groups.items()}, n)


def in_agreement_band(agreement: float, low: float = 0.3, high: float = 0.8) -> bool:
    """Keep questions the solver neither always nor never agrees on (R-Zero and VisPlay: 0.3 to 0.8).

    >>> in_agreement_band(0.5), in_agreement_band(0.9), in_agreement_band(0.3)
    (True, False, True)
    """
    return low <= agreement <= high
