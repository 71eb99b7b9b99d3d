"""What held-out figures are read against: best constant answers and spans of a held-out set, paired
changes with their standard errors, and the round table and report that show them."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from videozero.evaluation.baselines import (
    GRID,
    ScoredTruth,
    best_constant_answer,
    best_constant_span,
    constant_baselines,
    paired_change,
    paired_changes,
)
from videozero.rewards import answer_accuracy, temporal_iou


def _q(i: int, family: str, answer: str, span=(0.0, 1.0), duration=4.0, kind="option") -> ScoredTruth:
    return ScoredTruth(i, family, kind, answer, (span,), duration)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from("ABCD"), min_size=1, max_size=30))
def test_the_best_constant_answer_beats_every_other_constant(answers):
    qs = [_q(i, "f", a) for i, a in enumerate(answers)]
    best, score = best_constant_answer(qs)
    assert score == max(answers.count(a) for a in set(answers)) / len(answers)
    for other in "ABCD":
        assert score >= sum(answer_accuracy(other, q.answer, q.kind) for q in qs) / len(qs)
    assert answers.count(best) == max(answers.count(a) for a in answers)


def test_orders_get_partial_credit_in_their_constant():
    qs = [_q(i, "ordering", a, kind="permutation") for i, a in enumerate(["1,2,3", "1,3,2", "2,1,3"])]
    best, score = best_constant_answer(qs)
    exact = max(
        sum(answer_accuracy(c, q.answer, q.kind) for q in qs) / 3 for c in ("1,2,3", "1,3,2", "2,1,3")
    )
    assert math.isclose(score, exact) and best in ("1,2,3", "1,3,2", "2,1,3")


def test_the_best_constant_span_is_relative_to_each_duration_and_no_grid_span_beats_it():
    rng = random.Random(3)
    qs = []
    for i in range(12):
        d = rng.uniform(5, 40)
        s = rng.uniform(0.1, 0.3) * d
        qs.append(_q(i, "grounding", "A", (s, s + 0.2 * d), d))
    span, iou = best_constant_span(qs)
    lo, hi = span
    assert 0.0 <= lo < hi <= 1.0 and iou > 0.4
    for a in range(GRID):
        for b in range(a + 1, GRID + 1):
            other = sum(
                temporal_iou([(a / GRID * q.duration, b / GRID * q.duration)], q.evidence) for q in qs
            )
            assert other / len(qs) <= iou + 1e-9


def test_overall_constants_weigh_the_families_by_their_questions():
    qs = [_q(0, "a", "A"), _q(1, "a", "A"), _q(2, "a", "B"), _q(3, "b", "C")]
    b = constant_baselines(qs)
    assert math.isclose(b["a/constant_accuracy"], 2 / 3) and b["b/constant_accuracy"] == 1.0
    assert math.isclose(b["constant_accuracy"], (2 / 3 * 3 + 1.0) / 4)
    no_evidence = constant_baselines([ScoredTruth(9, "c", "option", "A", (), 3.0)])
    assert "constant_mIoU" not in no_evidence and no_evidence["constant_accuracy"] == 1.0


def test_paired_changes_follow_the_textbook_formula_and_flag_two_standard_errors():
    rng = random.Random(0)
    pairs = [(float(rng.random() < 0.7), float(rng.random() < 0.4)) for _ in range(200)]
    change = paired_change(pairs)
    diffs = [a - b for a, b in pairs]
    mean = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
    assert math.isclose(change.delta, mean) and math.isclose(change.se, sd / math.sqrt(len(diffs)))
    assert change.significant  # a 30-point gain on 200 questions
    assert not paired_change([(1.0, 0.0), (0.0, 1.0)]).significant
    assert paired_change([]) is None


def test_paired_changes_use_only_questions_both_checkpoints_answered():
    families = {1: "a", 2: "a", 3: "b", 4: "b"}
    scores = {1: (1.0, 0.5), 2: (1.0, None), 3: (0.0, 0.2), 4: (1.0, 0.9)}
    reference = {1: (0.0, 0.1), 2: (1.0, None), 3: (0.0, 0.4)}  # 4 was not answered by the reference
    ch = paired_changes(families, scores, reference)
    assert ch["accuracy"].n == 3 and math.isclose(ch["accuracy"].delta, 1 / 3)
    assert ch["a/accuracy"].n == 2 and ch["b/accuracy"].n == 1
    assert ch["mIoU"].n == 2 and math.isclose(ch["mIoU"].delta, (0.4 - 0.2) / 2)
