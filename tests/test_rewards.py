"""Rewards and pseudo-labels on hand-computed cases, degenerate spans, ties, empty and malformed rollouts."""

from __future__ import annotations

import pytest

from videozero.answer_format import parse_answer
from videozero.rewards import (
    RewardWeights,
    answer_accuracy,
    boundary_penalised_iou,
    jigsaw_credit,
    solver_reward,
    temporal_iou,
)
from videozero.solver.pseudo_label import Rollout, consensus_span, in_agreement_band, majority_vote


@pytest.mark.parametrize(
    ("pred", "target", "iou"),
    [
        ([(0, 10)], [(0, 10)], 1.0),
        ([(0, 4)], [(2, 6)], 2 / 6),
        ([(0, 1)], [(5, 6)], 0.0),
        ([(3, 3)], [(2, 4)], 0.0),  # zero-length prediction
        ([(2, 4)], [(3, 3)], 0.0),  # zero-length target
        ([(4, 2)], [(2, 4)], 1.0),  # reversed bounds are ordered
        ([(0, 2), (1, 3)], [(0, 3)], 1.0),  # overlapping predictions merge
        ([(0, 1), (4, 5)], [(0, 5)], 2 / 5),
        ([(0, 1), (4, 5)], [(0.5, 4.5)], 1.0 / 5.0),
        ([], [(0, 1)], 0.0),
    ],
)
def test_temporal_iou(pred, target, iou) -> None:
    assert temporal_iou(pred, target) == pytest.approx(iou)
    assert temporal_iou(target, pred) == pytest.approx(iou)


def test_boundary_penalised_iou() -> None:
    # IoU 3/5, start error 1 of 20 s, end error 1 of 20 s.
    assert boundary_penalised_iou((1, 5), (2, 6), 20) == pytest.approx((3 / 5) * 0.95 * 0.95)
    assert boundary_penalised_iou((0, 1), (0, 1), 0) == 0.0
    assert boundary_penalised_iou((0, 100), (0, 1), 10) == 0.0  # end error beyond the video


def test_answer_accuracy_kinds() -> None:
    assert answer_accuracy("Option C", "C", "option") == 1.0
    assert answer_accuracy("C D", "C", "option") == 0.0
    assert answer_accuracy(None, "C", "option") == 0.0
    assert answer_accuracy("A > B > C", "A,B,C", "permutation") == 1.0
    assert answer_accuracy("A,C,B,D", "A,B,C,D", "permutation") == pytest.approx(0.2 * 2 / 4)
    assert answer_accuracy("A,A,B", "A,B,C", "permutation") == 0.0
    assert answer_accuracy("3 cuts", "3", "number") == 1.0
    assert answer_accuracy("5", "3", "number", number_tolerance=1) == 0.0
    assert answer_accuracy("A red ball.", "red ball", "text") == 1.0
    assert jigsaw_credit(["B", "A"], ["A", "B"]) == 0.0


def test_solver_reward_gates_alignment_by_correctness() -> None:
    w = RewardWeights(w_fmt=0.5, alpha=2.0)
    right = solver_reward(True, "A", [(0, 2)], "A", [(1, 2)], "option", w)
    assert right.total == pytest.approx(0.5 + 1 * (1 + 2 * 0.5))
    wrong = solver_reward(True, "B", [(1, 2)], "A", [(1, 2)], "option", w)
    assert (wrong.accuracy, wrong.total) == (0.0, 0.5)
    unformatted = solver_reward(False, "A", [(1, 2)], "A", [(1, 2)], "option", w)
    assert unformatted.total == pytest.approx(3.0)
    no_align = solver_reward(True, "A", [(1, 2)], "A", [(1, 2)], "option", RewardWeights(alpha=0.0))
    assert no_align.total == pytest.approx(1.2)
    tr1 = solver_reward(
        True, "A", [(1, 5)], "A", [(2, 6)], "option", RewardWeights(boundary_penalty=True), duration=20
    )
    assert tr1.alignment == pytest.approx((3 / 5) * 0.95 * 0.95)


def test_malformed_outputs_score_only_what_they_earn() -> None:
    for raw in ["", "B", "<answer>B", "<evidence>[nan, 3]</evidence><answer>B</answer>", "<answer></answer>"]:
        parsed = parse_answer(raw)
        r = solver_reward(parsed.format_ok, parsed.answer, parsed.spans, "B", [(1, 2)], "option")
        assert r.format == 0.0
        assert r.total <= 2.0


def test_majority_vote_ties_and_empties() -> None:
    # 2 votes each for A and B: B's spans agree with each other, A's do not -> B wins.
    rollouts = [
        Rollout("A", ((0.0, 1.0),)),
        Rollout("B", ((4.0, 6.0),)),
        Rollout("A", ((8.0, 9.0),)),
        Rollout("B", ((4.0, 5.0),)),
    ]
    label = majority_vote(rollouts, "option")
    assert (label.answer, label.agreement, label.votes) == ("B", 0.5, {"A": 2, "B": 2})
    assert label.spans == ((4.0, 6.0),)
    # Equal span agreement: the answer given first wins.
    even = majority_vote([Rollout("C"), Rollout("D")], "option")
    assert even.answer == "C" and even.agreement == 0.5 and even.spans == ()
    # Unparseable answers count against agreement but never win.
    label = majority_vote([Rollout(None), Rollout("garbage!"), Rollout("b", ((1.0, 2.0),))], "option")
    assert (label.answer, label.agreement) == ("B", pytest.approx(1 / 3))
    empty = majority_vote([], "option")
    assert (empty.answer, empty.agreement, empty.r_learn, empty.n) == (None, 0.0, 0.0, 0)
    perm = majority_vote([Rollout("A,B,C"), Rollout("a b c"), Rollout("C,B,A")], "permutation")
    assert perm.answer == "A,B,C" and perm.agreement == pytest.approx(2 / 3)


def test_consensus_span_is_the_medoid() -> None:
    sets = [((10.0, 12.0),), ((10.5, 12.5),), ((11.0, 12.0),), ((0.0, 1.0),)]
    assert consensus_span(sets) == ((10.5, 12.5),) or consensus_span(sets) == ((10.0, 12.0),)
    expected = max(range(4), key=lambda i: sum(temporal_iou(sets[i], sets[j]) for j in range(4) if j != i))
    assert consensus_span(sets) == sets[expected]
    assert consensus_span([(), ((1.0, 2.0),)]) == ((1.0, 2.0),)
    assert consensus_span([((1.0, 2.0), (5.0, 6.0)), ((1.0, 2.0), (5.0, 6.5)), ((9.0, 9.5),)]) == (
        (1.0, 2.0),
        (5.0, 6.0),
    )


def test_agreement_band_and_r_learn() -> None:
    assert [in_agreement_band(c) for c in (0.0, 0.29, 0.3, 0.8, 0.81, 1.0)] == [
        False,
        False,
        True,
        True,
        False,
        False,
    ]
    assert majority_vote([Rollout("A")] * 3 + [Rollout("B")], "option").r_learn == pytest.approx(0.25)
