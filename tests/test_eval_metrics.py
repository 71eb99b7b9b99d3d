"""Evaluation metrics against hand-computed cases (figures worked out in the comments)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from videozero.evaluation.metrics import (
    QVH_MAP_THRESHOLDS,
    accuracy,
    accuracy_by_family,
    average_precision_detection,
    dependency_diagnostics,
    format_rate,
    key_necessity,
    key_specificity,
    mean_iou,
    moment_retrieval_r1,
    nextgqa_metrics,
    qvhighlights_metrics,
    recall_at,
    recall_at_thresholds,
    span_iop,
    span_iou,
    video_dependency,
)
from videozero.rewards import temporal_iou


def test_span_iou_hand_cases() -> None:
    assert span_iou((0, 10), (0, 10)) == 1.0
    assert span_iou((2, 12), (0, 10)) == pytest.approx(8 / 12)  # inter 8, union 12
    assert span_iou((0, 4), (2, 10)) == pytest.approx(2 / 10)  # inter 2, union 10
    assert span_iou((0, 1), (1, 2)) == 0.0  # touching spans share no time
    assert span_iou((5, 5), (0, 10)) == 0.0  # a point covers no time


def test_span_iop_follows_nextgqa() -> None:
    assert span_iop((0, 20), (5, 10)) == pytest.approx(5 / 20)  # 5 s of the 20 s prediction is evidence
    assert span_iop((6, 8), (5, 10)) == 1.0
    assert span_iop((7, 7), (5, 10)) == 1.0  # a point inside the window: NExT-GQA returns IoP 1
    assert span_iop((11, 11), (5, 10)) == 0.0
    assert span_iop((20, 30), (5, 10)) == 0.0  # disjoint: the official value is negative, max() keeps 0


@given(st.floats(0, 100), st.floats(0, 50), st.floats(0, 100), st.floats(0, 50))
def test_span_iou_agrees_with_reward_iou(s1: float, d1: float, s2: float, d2: float) -> None:
    a, b = (s1, s1 + d1), (s2, s2 + d2)
    iou = span_iou(a, b)
    assert 0.0 <= iou <= 1.0
    assert iou == pytest.approx(span_iou(b, a))
    assert iou == pytest.approx(temporal_iou([a], [b]), abs=1e-12)


def test_recall_thresholds_count_ties_and_float_rounding() -> None:
    # 0.1 + 0.2 style rounding must not lose an exact tie: IoU of (0, 0.3) with (0, 0.6) is 0.5
    assert recall_at([span_iou((0.0, 0.1 + 0.2), (0.0, 0.6))], 0.5) == 1.0
    assert recall_at([0.5 - 1e-6], 0.5) == 0.0
    assert recall_at_thresholds([0.3, 0.5, 0.69, 0.7, 1.0]) == {"R1@0.3": 1.0, "R1@0.5": 0.8, "R1@0.7": 0.4}
    assert mean_iou([]) == 0.0 and recall_at([], 0.5) == 0.0


def test_moment_retrieval_r1_uses_the_top_span_and_the_best_window() -> None:
    preds = [
        [(0, 10)],  # perfect: IoU 1
        [(2, 12)],  # IoU 8/12 = 0.667: passes 0.3 and 0.5, fails 0.7
        [(7, 17), (0, 10)],  # only the first span counts: inter 3, union 17 -> 0.176
        [],  # no span: IoU 0
        [(20, 30)],  # two ground-truth windows: the best one (20, 30) gives 1
    ]
    gts = [[(0, 10)], [(0, 10)], [(0, 10)], [(0, 10)], [(0, 10), (20, 30)]]
    r = moment_retrieval_r1(preds, gts)
    assert r["R1@0.3"] == pytest.approx(3 / 5)
    assert r["R1@0.5"] == pytest.approx(3 / 5)
    assert r["R1@0.7"] == pytest.approx(2 / 5)
    assert r["mIoU"] == pytest.approx((1 + 8 / 12 + 3 / 17 + 0 + 1) / 5)


def test_nextgqa_takes_the_max_over_windows_not_their_union() -> None:
    gts = [[(12.1, 17.1), (20.0, 23.5), (29.7, 33.2)]]
    m = nextgqa_metrics([[(20.0, 23.5)]], gts, [True])
    # the union IoU would be 3.5 / 12 = 0.29; the official script scores the best single window: 1
    assert m["mIoU"] == pytest.approx(1.0) and m["mIoP"] == pytest.approx(1.0) and m["Acc@GQA"] == 1.0
    m = nextgqa_metrics([[(12.1, 23.5)]], gts, [True])
    # vs (12.1, 17.1): inter 5, union 11.4 -> IoU 0.4386, IoP 5 / 11.4 = 0.4386 (< 0.5: not grounded)
    assert m["mIoU"] == pytest.approx(5 / 11.4) and m["mIoP"] == pytest.approx(5 / 11.4)
    assert (m["IoU@0.3"], m["IoU@0.5"], m["IoP@0.3"], m["IoP@0.5"]) == (1.0, 0.0, 1.0, 0.0)
    assert (m["Acc@QA"], m["Acc@GQA"]) == (1.0, 0.0)


def test_nextgqa_acc_gqa_needs_both_answer_and_iop() -> None:
    gts = [[(0, 10)], [(0, 10)], [(0, 10)], [(0, 10)]]
    preds = [[(2, 6)], [(2, 6)], [(8, 20)], [(5, 5)]]  # IoP 1, 1, 2/12, 1 (point inside)
    m = nextgqa_metrics(preds, gts, [True, False, True, True])
    assert m["Acc@QA"] == 0.75
    assert m["Acc@GQA"] == 0.5  # items 1 and 4
    assert m["mIoP"] == pytest.approx((1 + 1 + 2 / 12 + 1) / 4)
    assert m["mIoU"] == pytest.approx((0.4 + 0.4 + 2 / 20 + 0) / 4)


def test_average_precision_hand_case() -> None:
    gts = [(0, 10), (20, 30)]
    preds = [(0, 10, 0.9), (40, 50, 0.8), (20, 30, 0.7)]
    # ranked: TP, FP, TP -> precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1
    # interpolated: 1/2 * 1 + 1/2 * 2/3 = 0.8333
    assert average_precision_detection(gts, preds, thresholds=(0.5,)) == [pytest.approx(5 / 6)]
    # the same window twice: the second finds its ground truth taken and is a false positive
    dup = [(0, 10, 0.9), (0, 10, 0.8)]
    assert average_precision_detection([(0, 10)], dup, thresholds=(0.5,)) == [pytest.approx(1.0)]
    assert average_precision_detection(gts, dup, thresholds=(0.5,)) == [pytest.approx(0.5)]
    # ranking by score, not list order: the miss ranked first halves the precision
    assert average_precision_detection([(0, 10)], [(0, 10, 0.1), (40, 50, 0.9)], (0.5,)) == [
        pytest.approx(0.5)
    ]
    assert average_precision_detection([(0, 10)], [], (0.5, 0.7)) == [0.0, 0.0]


def test_qvhighlights_thresholds_and_first_window_r1() -> None:
    assert QVH_MAP_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    # a window at IoU 0.7436 (inter 58, union 78) is a hit at 0.5 .. 0.7 (5 of 10 thresholds)
    m = qvhighlights_metrics([[(92, 160, 1.0)]], [[(82, 150)]])
    assert m["mAP"] == pytest.approx(0.5) and m["mAP@0.5"] == 1.0 and m["mAP@0.75"] == 0.0
    assert (m["R1@0.5"], m["R1@0.7"]) == (1.0, 1.0)
    # R1 reads the first window of the list, mAP ranks by score
    m = qvhighlights_metrics([[(40, 50, 0.1), (0, 10, 0.9)]], [[(0, 10)]])
    assert m["R1@0.5"] == 0.0 and m["mAP"] == pytest.approx(1.0)
    # only the first 10 windows count: 12 ground-truth windows predicted exactly give AP 10/12
    gts = [(10 * i, 10 * i + 5) for i in range(12)]
    m = qvhighlights_metrics([[(s, e, 1.0) for s, e in gts]], [gts])
    assert m["mAP"] == pytest.approx(10 / 12)
    m = qvhighlights_metrics([[]], [[(0, 10)]])
    assert m == {"R1@0.5": 0.0, "R1@0.7": 0.0, "mAP": 0.0, "mAP@0.5": 0.0, "mAP@0.75": 0.0}


def test_accuracy_format_rate_and_diagnostics() -> None:
    assert accuracy([1, 0, 0, 1]) == 0.5 and accuracy([]) == 0.0
    assert accuracy_by_family(["a", "b", "a", "a"], [1, 1, 0, 1]) == {"a": pytest.approx(2 / 3), "b": 1.0}
    assert format_rate([True, False]) == 0.5
    assert video_dependency(0.7, 0.4) == pytest.approx(0.3)
    assert key_necessity(0.7, 0.45) == pytest.approx(0.25)
    assert key_specificity(0.6, 0.5) == pytest.approx(0.1)
    d = dependency_diagnostics(
        {"full": 0.5, "blind": 0.25, "masked": 0.5, "key_only": 0.5, "random_span": 0.75}
    )
    assert d == {"video_dependency": 0.25, "key_necessity": 0.0, "key_specificity": -0.25}
    assert dependency_diagnostics({"full": 0.5}) == {}
