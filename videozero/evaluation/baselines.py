"""What a held-out figure must be read against: the best constant guess of that held-out set, and each
checkpoint's change against a reference checkpoint with its paired standard error.

- `constant_baselines`: per family, the best constant answer (the one answer that, given to every
  question of the family, scores best: the most frequent option letter, count or order) and the best
  constant span (one span in fractions of the video's duration, the same for every question, chosen on a
  grid of 1/20ths for the highest mean IoU). The overall figure is the n-weighted mean of the families'
  (a guesser that knows the family, as the question text tells it).
- `paired_changes`: the per-question difference of two checkpoints' scores on the questions both
  answered, its mean and standard error (std / sqrt(n)), per family and overall: the noise of a round's
  gain without the question-to-question spread both checkpoints share.

Both are computed from what the store holds (questions and greedy attempts); nothing is stored.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from videozero.rewards import answer_accuracy, merge_spans

GRID = 20  # constant spans are searched on fractions k / GRID of the duration


@dataclass(frozen=True)
class ScoredTruth:
    """One held-out question as the baselines need it: family, answer kind, truth, duration."""

    id: int
    family: str
    kind: str
    answer: str
    evidence: tuple[tuple[float, float], ...]
    duration: float


def best_constant_answer(questions: Sequence[ScoredTruth]) -> tuple[str | None, float]:
    """The answer among the questions' own answers that scores best given to all of them, and its mean
    accuracy (partial credit counts for orders).

    >>> q = [ScoredTruth(i, "f", "option", a, (), 1.0) for i, a in enumerate("AABC")]
    >>> best_constant_answer(q)
    ('A', 0.5)
    """
    if not questions:
        return None, math.nan
    best, score = None, -1.0
    for candidate in sorted({q.answer for q in questions}):
        mean = sum(answer_accuracy(candidate, q.answer, q.kind) for q in questions) / len(questions)
        if mean > score:
            best, score = candidate, mean
    return best, score


def best_constant_span(questions: Sequence[ScoredTruth]) -> tuple[tuple[float, float] | None, float]:
    """The span (fractions of each video's duration) with the highest mean IoU against the evidence of the
    questions that have evidence, and that mean IoU.

    >>> q = [ScoredTruth(i, "f", "option", "A", ((0.0, 5.0),), 10.0) for i in range(3)]
    >>> best_constant_span(q)
    ((0.0, 0.5), 1.0)
    """
    with_evidence = [q for q in questions if q.evidence and q.duration > 0]
    if not with_evidence:
        return None, math.nan
    # `temporal_iou([(lo * d, hi * d)], evidence)` for every question at once, with its operations in its
    # order (the same floats): the merged evidence spans padded with empty ones, which intersect nothing
    merged = [merge_spans(q.evidence) for q in with_evidence]
    width = max(len(m) for m in merged)
    starts = np.zeros((len(merged), width))
    ends = np.zeros((len(merged), width))
    for row, spans in enumerate(merged):
        for k, (s, e) in enumerate(spans):
            starts[row, k], ends[row, k] = s, e
    durations = np.array([q.duration for q in with_evidence])
    covered = np.zeros(len(merged))
    for k in range(width):
        covered = covered + (ends[:, k] - starts[:, k])
    best, score = None, -1.0
    for a in range(GRID):
        for b in range(a + 1, GRID + 1):
            lo, hi = a / GRID, b / GRID
            p0, p1 = lo * durations, hi * durations
            inter = np.zeros(len(merged))
            for k in range(width):
                inter = inter + np.maximum(0.0, np.minimum(p1, ends[:, k]) - np.maximum(p0, starts[:, k]))
            union = (p1 - p0) + covered - inter
            iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
            mean = sum(iou.tolist()) / len(with_evidence)
            if mean > score + 1e-12:
                best, score = (lo, hi), mean
    return best, score


def constant_baselines(questions: Iterable[ScoredTruth]) -> dict[str, float]:
    """`constant_accuracy` and `constant_mIoU`, overall (n-weighted over families) and as
    `<family>/constant_accuracy`, `<family>/constant_mIoU`.

    >>> q = [ScoredTruth(i, "f", "option", a, ((0.0, 1.0),), 2.0) for i, a in enumerate("AAB")]
    >>> b = constant_baselines(q)
    >>> round(b["constant_accuracy"], 4), b["f/constant_mIoU"]
    (0.6667, 1.0)
    """
    by_family: dict[str, list[ScoredTruth]] = defaultdict(list)
    for q in questions:
        by_family[q.family].append(q)
    out: dict[str, float] = {}
    acc_sum = iou_sum = 0.0
    acc_n = iou_n = 0
    for family, group in sorted(by_family.items()):
        _, acc = best_constant_answer(group)
        _, iou = best_constant_span(group)
        out[f"{family}/constant_accuracy"] = acc
        acc_sum, acc_n = acc_sum + acc * len(group), acc_n + len(group)
        if not math.isnan(iou):
            spans = sum(1 for q in group if q.evidence and q.duration > 0)
            out[f"{family}/constant_mIoU"] = iou
            iou_sum, iou_n = iou_sum + iou * spans, iou_n + spans
    if acc_n:
        out["constant_accuracy"] = acc_sum / acc_n
    if iou_n:
        out["constant_mIoU"] = iou_sum / iou_n
    return out


@dataclass(frozen=True)
class PairedChange:
    """Mean per-question difference (checkpoint - reference), its standard error, and how many pairs."""

    delta: float
    se: float
    n: int

    def __str__(self) -> str:
        return f"{self.delta:+.3f} ± {self.se:.3f}"

    @property
    def significant(self) -> bool:
        """More than two standard errors from zero."""
        return self.n > 1 and abs(self.delta) > 2 * self.se


def paired_change(pairs: Sequence[tuple[float, float]]) -> PairedChange | None:
    """The paired change of (checkpoint, reference) scores; None without pairs.

    >>> str(paired_change([(1.0, 0.0), (1.0, 1.0), (0.0, 0.0), (1.0, 0.0)]))
    '+0.500 ± 0.289'
    """
    if not pairs:
        return None
    diffs = [a - b for a, b in pairs]
    n = len(diffs)
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    return PairedChange(mean, math.sqrt(var / n), n)


Scores = Mapping[int, tuple[float, float | None]]  # question id -> (accuracy, IoU or None)


def paired_changes(families: Mapping[int, str], scores: Scores, reference: Scores) -> dict[str, PairedChange]:
    """`accuracy` and `mIoU` changes of `scores` against `reference` over the questions both answered,
    overall and as `<family>/accuracy`, `<family>/mIoU`."""
    acc: dict[str, list[tuple[float, float]]] = defaultdict(list)
    iou: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for qid, (a, i) in scores.items():
        if qid not in reference or qid not in families:
            continue
        ra, ri = reference[qid]
        for prefix in ("", f"{families[qid]}/"):
            acc[prefix].append((a, ra))
            if i is not None and ri is not None:
                iou[prefix].append((i, ri))
    out: dict[str, PairedChange] = {}
    for prefix, pairs in acc.items():
        out[f"{prefix}accuracy"] = paired_change(pairs)
    for prefix, pairs in iou.items():
        out[f"{prefix}mIoU"] = paired_change(pairs)
    return {k: v for k, v in out.items() if v is not None}
