"""Video-Zero rewards as pure functions of plain values, shared by every training backend.

Spans are (start_s, end_s) pairs in seconds. Answers are strings as the parser returns them.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

Span = tuple[float, float]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = re.compile(r"[^\w\s]")
_PERM_ITEM = re.compile(r"[A-Za-z]|\d+")


def format_reward(format_ok: bool) -> float:
    """1 when the output followed the answer format, else 0.

    >>> format_reward(True), format_reward(False)
    (1.0, 0.0)
    """
    return 1.0 if format_ok else 0.0


def normalise_option(answer: str | None) -> str | None:
    """The option letter an answer names: "B", "(b)", "B. the red one", "Option B" -> "B".

    >>> [normalise_option(a) for a in ["b", "(C)", "D. red", "Option A", "maybe", None]]
    ['B', 'C', 'D', 'A', None, None]
    """
    if not answer:
        return None
    text = answer.strip()
    m = re.fullmatch(r"(?:option\s*)?\(?([A-Za-z])\)?(?:[.:)]\s*.*)?", text, flags=re.IGNORECASE | re.DOTALL)
    return m.group(1).upper() if m else None


def normalise_permutation(answer: str | None) -> tuple[str, ...] | None:
    """An order as a tuple of item names: "B, A, C" / "2 1 3" / "B>A>C" -> ("B", "A", "C") / ("2", "1", "3").

    >>> normalise_permutation("b, a , C"), normalise_permutation("2 -> 1 -> 3"), normalise_permutation("")
    (('B', 'A', 'C'), ('2', '1', '3'), None)
    """
    if not answer:
        return None
    items = tuple(tok.upper() for tok in _PERM_ITEM.findall(answer))
    return items or None


def normalise_number(answer: str | None) -> float | None:
    """The number an answer states ("3", "3.0", "three shots" is not read: digits only).

    >>> normalise_number(" 3 "), normalise_number("about 4.5 s"), normalise_number("many")
    (3.0, 4.5, None)
    """
    if not answer:
        return None
    m = re.search(r"[-+]?\d+(?:\.\d+)?", answer)
    if not m:
        return None
    value = float(m.group(0))
    return value if math.isfinite(value) else None


def normalise_text(answer: str | None) -> str:
    """Lower case, no accents, punctuation or articles, single spaces (SQuAD-style).

    >>> normalise_text("  The Red  Square! ")
    'red square'
    """
    if not answer:
        return ""
    text = unicodedata.normalize("NFKD", answer).encode("ascii", "ignore").decode().lower()
    text = _ARTICLES.sub(" ", _PUNCT.sub(" ", text))
    return " ".join(text.split())


def canonical_answer(answer: str | None, kind: str) -> str | None:
    """One canonical string per answer of `kind`, so that votes and comparisons agree.

    >>> canonical_answer("(b)", "option"), canonical_answer("2,1,3", "permutation"), canonical_answer("3.0", "number")
    ('B', '2,1,3', '3')
    """
    if kind == "option":
        return normalise_option(answer)
    if kind == "permutation":
        perm = normalise_permutation(answer)
        return ",".join(perm) if perm else None
    if kind == "number":
        value = normalise_number(answer)
        return None if value is None else f"{value:g}"
    text = normalise_text(answer)
    return text or None


def jigsaw_credit(predicted: Sequence[str] | None, target: Sequence[str]) -> float:
    """Visual Jigsaw's partial credit: 1 for the exact order, else 0.2 x the fraction of places right.

    >>> jigsaw_credit(["A", "B", "C"], ["A", "B", "C"]), jigsaw_credit(["A", "C", "B"], ["A", "B", "C"])
    (1.0, 0.06666666666666667)
    >>> jigsaw_credit(["A", "B"], ["A", "B", "C"]), jigsaw_credit(None, ["A"])
    (0.0, 0.0)
    """
    if not predicted or len(predicted) != len(target) or sorted(predicted) != sorted(target):
        return 0.0
    if list(predicted) == list(target):
        return 1.0
    return 0.2 * sum(p == t for p, t in zip(predicted, target, strict=True)) / len(target)


def answer_accuracy(predicted: str | None, target: str, kind: str, number_tolerance: float = 0.0) -> float:
    """Accuracy in [0, 1] of `predicted` against `target` for an answer of `kind`.

    kinds: option (letter), permutation (jigsaw partial credit), number (within tolerance), text.

    >>> answer_accuracy("b", "B", "option"), answer_accuracy("B,A", "A,B", "permutation")
    (1.0, 0.0)
    >>> answer_accuracy("4", "3", "number", number_tolerance=1), answer_accuracy("the Dog", "dog", "text")
    (1.0, 1.0)
    """
    if kind == "permutation":
        target_perm = normalise_permutation(target) or ()
        return jigsaw_credit(normalise_permutation(predicted), target_perm)
    if kind == "number":
        p, t = normalise_number(predicted), normalise_number(target)
        return 1.0 if p is not None and t is not None and abs(p - t) <= number_tolerance + 1e-9 else 0.0
    p, t = canonical_answer(predicted, kind), canonical_answer(target, kind)
    return 1.0 if p is not None and p == t else 0.0


def merge_spans(spans: Sequence[Span]) -> list[Span]:
    """The time `spans` cover as sorted, disjoint spans (touching or overlapping ones joined)."""
    merged: list[list[float]] = []
    for s, e in sorted((min(a, b), max(a, b)) for a, b in spans):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged]


def _length(spans: Sequence[Span]) -> float:
    return sum(e - s for s, e in spans)


def temporal_iou(predicted: Sequence[Span], target: Sequence[Span]) -> float:
    """IoU of the time covered by `predicted` and by `target` (each a union of one or more spans).

    Zero-length spans cover no time, so a degenerate prediction scores 0.

    >>> temporal_iou([(0, 2)], [(1, 3)])
    0.3333333333333333
    >>> temporal_iou([(0, 1), (2, 3)], [(0, 3)]), temporal_iou([(1, 1)], [(1, 1)]), temporal_iou([], [(0, 1)])
    (0.6666666666666666, 0.0, 0.0)
    """
    a, b = merge_spans(predicted), merge_spans(target)
    if not a or not b:
        return 0.0
    inter = 0.0
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        inter += max(0.0, hi - lo)
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    union = _length(a) + _length(b) - inter
    return inter / union if union > 0 else 0.0


def boundary_penalised_iou(predicted: Span, target: Span, duration: float) -> float:
    """Time-R1's reward: IoU x (1 - |start error| / D) x (1 - |end error| / D).

    >>> round(boundary_penalised_iou((1, 3), (2, 4), duration=10), 4)
    0.27
    >>> boundary_penalised_iou((2, 4), (2, 4), duration=10)
    1.0
    """
    if duration <= 0:
        return 0.0
    iou = temporal_iou([predicted], [target])
    ds = min(1.0, abs(predicted[0] - target[0]) / duration)
    de = min(1.0, abs(predicted[1] - target[1]) / duration)
    return iou * (1 - ds) * (1 - de)


class RewardWeights(BaseModel):
    """Weights of the solver reward r_S = w_fmt * format + Acc * (1 + alpha * r_align) (+ w_zoom * Acc_zoom)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

    w_fmt: float = Field(0.2, ge=0, description="weight of the format term")
    alpha: float = Field(1.0, ge=0, description="weight of evidence alignment (0 turns it off)")
    boundary_penalty: bool = Field(False, description="use Time-R1's boundary-penalised IoU for r_align")
    number_tolerance: float = Field(0.0, ge=0, description="counting answers within this many are right")
    zoom: float = Field(
        0.0,
        ge=0,
        description="weight of Zoom-Zero's zoom-in accuracy (a policy answers again from the rollout's spans "
        "shown densely; 0 turns it off)",
    )


@dataclass(frozen=True)
class SolverReward:
    """The parts of one rollout's reward and their total."""

    format: float
    accuracy: float
    alignment: float
    total: float
    zoom: float = 0.0  # zoom-in accuracy (Zoom-Zero), when it was measured


def with_zoom(reward: SolverReward, zoom_accuracy: float, weights: RewardWeights) -> SolverReward:
    """`reward` with the zoom-in accuracy added: total + w_zoom * acc_zoom.

    >>> with_zoom(SolverReward(1.0, 1.0, 0.5, 1.7), 1.0, RewardWeights(zoom=0.5)).total
    2.2
    """
    return SolverReward(
        reward.format,
        reward.accuracy,
        reward.alignment,
        reward.total + weights.zoom * zoom_accuracy,
        zoom_accuracy,
    )


def solver_reward(
    format_ok: bool,
    predicted_answer: str | None,
    predicted_spans: Sequence[Span],
    target_answer: str,
    target_spans: Sequence[Span],
    kind: str,
    weights: RewardWeights | None = None,
    duration: float | None = None,
) -> SolverReward:
    """r_S = w_fmt * format + Acc * (1 + alpha * r_align), r_align = IoU(predicted, target spans).

    Correctness gates alignment: a wrong answer earns no temporal reward.

    >>> solver_reward(True, "B", [(1, 3)], "B", [(2, 4)], "option")
    SolverReward(format=1.0, accuracy=1.0, alignment=0.3333333333333333, total=1.5333333333333332, zoom=0.0)
    >>> solver_reward(True, "A", [(2, 4)], "B", [(2, 4)], "option").total
    0.2
    """
    w = weights or RewardWeights()
    fmt = format_reward(format_ok)
    acc = answer_accuracy(predicted_answer, target_answer, kind, w.number_tolerance)
    if w.boundary_penalty and duration and len(predicted_spans) == 1 and len(target_spans) == 1:
        align = boundary_penalised_iou(predicted_spans[0], target_spans[0], duration)
    else:
        align = temporal_iou(predicted_spans, target_spans)
    return SolverReward(fmt, acc, align, w.w_fmt * fmt + acc * (1 + w.alpha * align))
