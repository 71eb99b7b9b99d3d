"""Evaluation metrics as pure functions: temporal IoU/IoP, recall at IoU thresholds, QVHighlights mAP,
NExT-GQA's grounded-QA scores, and the paper's dependency diagnostics.

Every figure is a fraction in [0, 1] (the official scripts print percentages). Where a benchmark's
official code fixes a convention (how several ground-truth windows are matched, which predicted window
counts), the function follows it and its docstring names the source. One deliberate deviation applies
everywhere: thresholds are compared with a 1e-9 tolerance, so an IoU that equals a threshold in exact
arithmetic (5 / 10 = 0.5) is not lost to float rounding (e.g. 0.49999999999999994).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

Span = tuple[float, float]

EPS = 1e-9
R1_THRESHOLDS = (0.3, 0.5, 0.7)
# QVHighlights' standalone_eval: np.linspace(0.5, 0.95, 10), each rounded to two decimals.
QVH_MAP_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))
QVH_MAX_PRED_WINDOWS = 10


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def span_iou(pred: Span, gt: Span) -> float:
    """IoU of two single spans; disjoint or degenerate spans score 0.

    Equals TALL's / 2D-TAN's / Moment-DETR's single-window IoU wherever theirs is non-negative (they
    divide by the hull, which is the union whenever the spans overlap).

    >>> span_iou((0, 10), (5, 15)), span_iou((0, 10), (0, 5)), span_iou((0, 1), (2, 3)), span_iou((1, 1), (1, 1))
    (0.3333333333333333, 0.5, 0.0, 0.0)
    """
    inter = max(0.0, min(pred[1], gt[1]) - max(pred[0], gt[0]))
    union = (pred[1] - pred[0]) + (gt[1] - gt[0]) - inter
    return inter / union if union > 0 else 0.0


def span_iop(pred: Span, gt: Span) -> float:
    """Intersection over the *prediction* (NExT-GQA's IoP): how much of the predicted span is evidence.

    As NExT-GQA's `get_tIoU`: a zero-length prediction scores 1 if it lies inside `gt`, else 0.

    >>> span_iop((2, 4), (0, 10)), span_iop((8, 12), (0, 10)), span_iop((3, 3), (0, 10)), span_iop((0, 1), (2, 3))
    (1.0, 0.5, 1.0, 0.0)
    """
    if pred[1] == pred[0]:
        return 1.0 if gt[0] <= pred[0] <= gt[1] else 0.0
    inter = max(0.0, min(pred[1], gt[1]) - max(pred[0], gt[0]))
    return inter / (pred[1] - pred[0]) if pred[1] > pred[0] else 0.0


def best_iou(pred: Span, gts: Sequence[Span]) -> float:
    """The IoU of `pred` with the ground-truth window it overlaps most (0 without windows).

    >>> best_iou((0, 4), [(0, 2), (0, 4), (10, 12)])
    1.0
    """
    return max((span_iou(pred, gt) for gt in gts), default=0.0)


def recall_at(ious: Sequence[float], threshold: float) -> float:
    """Fraction of items whose IoU (or IoP) reaches `threshold` (>=, with the module's 1e-9 tolerance).

    >>> recall_at([0.2, 0.5, 0.9, 0.49999999999999994], 0.5)
    0.75
    """
    return _mean(1.0 if v >= threshold - EPS else 0.0 for v in ious)


def recall_at_thresholds(
    ious: Sequence[float], thresholds: Sequence[float] = R1_THRESHOLDS
) -> dict[str, float]:
    """`R@t` for each threshold, keyed "R1@0.3", ... (R@1: one prediction per item).

    >>> recall_at_thresholds([0.2, 0.6, 0.8])
    {'R1@0.3': 0.6666666666666666, 'R1@0.5': 0.6666666666666666, 'R1@0.7': 0.3333333333333333}
    """
    return {f"R1@{t:g}": recall_at(ious, t) for t in thresholds}


def mean_iou(ious: Sequence[float]) -> float:
    """Mean IoU over items (0 for none).

    >>> mean_iou([0.2, 0.6, 1.0])
    0.6
    """
    return _mean(ious)


def moment_retrieval_r1(
    preds: Sequence[Sequence[Span]],
    gts: Sequence[Sequence[Span]],
    thresholds: Sequence[float] = R1_THRESHOLDS,
) -> dict[str, float]:
    """Charades-STA / ActivityNet-Captions grounding: R@1 IoU=m and mIoU.

    The top-1 predicted span of each item (the first of its list; an empty list scores IoU 0) against
    its ground-truth window (the best one if several). IoU >= m counts, as in TALL's
    `compute_IoU_recall_top_n_forreg` (the code that introduced Charades-STA; 2D-TAN's `eval` uses a
    strict `>`, which differs only at exact ties). mIoU is the mean top-1 IoU (2D-TAN averages the
    best 3 of its ranked proposals; with one prediction per item that is the same number).

    >>> r = moment_retrieval_r1([[(0, 10)], [(5, 15)], []], [[(0, 10)], [(0, 10)], [(0, 10)]])
    >>> r["R1@0.3"], r["R1@0.5"], round(r["mIoU"], 4)
    (0.6666666666666666, 0.3333333333333333, 0.4444)
    """
    ious = [best_iou(p[0], g) if p else 0.0 for p, g in zip(preds, gts, strict=True)]
    return {**recall_at_thresholds(ious, thresholds), "mIoU": mean_iou(ious)}


def nextgqa_metrics(
    preds: Sequence[Sequence[Span]], gts: Sequence[Sequence[Span]], qa_correct: Sequence[bool]
) -> dict[str, float]:
    """NExT-GQA's grounded-QA figures, as its official `eval_ground.py` computes them.

    Per question the predicted span (the first one; NExT-GQA predicts one) is scored against every
    ground-truth window separately, and IoU and IoP each take their maximum over the windows (not the
    IoU with their union). IoP >= 0.5 and a correct answer make a grounded correct answer (Acc@GQA).
    Acc@QA is the plain answer accuracy over the same questions.

    >>> m = nextgqa_metrics([[(0, 2)], [(5, 13)]], [[(0, 4)], [(0, 2), (6, 8)]], [True, True])
    >>> m["Acc@QA"], m["Acc@GQA"], m["mIoP"], m["IoP@0.5"], m["mIoU"], m["IoU@0.3"]
    (1.0, 0.5, 0.625, 0.5, 0.375, 0.5)
    """
    ious, iops = [], []
    for p, g in zip(preds, gts, strict=True):
        ious.append(max((span_iou(p[0], w) for w in g), default=0.0) if p else 0.0)
        iops.append(max((span_iop(p[0], w) for w in g), default=0.0) if p else 0.0)
    correct = [bool(c) for c in qa_correct]
    if len(correct) != len(ious):
        raise ValueError("nextgqa_metrics needs one qa_correct flag per prediction")
    grounded = [c and iop >= 0.5 - EPS for c, iop in zip(correct, iops, strict=True)]
    return {
        "Acc@QA": _mean(map(float, correct)),
        "Acc@GQA": _mean(map(float, grounded)),
        "mIoP": _mean(iops),
        "IoP@0.3": recall_at(iops, 0.3),
        "IoP@0.5": recall_at(iops, 0.5),
        "mIoU": _mean(ious),
        "IoU@0.3": recall_at(ious, 0.3),
        "IoU@0.5": recall_at(ious, 0.5),
    }


def interpolated_average_precision(precision: Sequence[float], recall: Sequence[float]) -> float:
    """VOC-2011 interpolated AP (precision made monotone, summed where recall changes), as MMAction2's
    `interpolated_precision_recall`, which QVHighlights' standalone_eval uses.

    >>> interpolated_average_precision([1.0, 0.5], [0.5, 0.5])
    0.5
    >>> interpolated_average_precision([0.0, 0.5], [0.0, 1.0])
    0.5
    """
    mprec = [0.0, *precision, 0.0]
    mrec = [0.0, *recall, 1.0]
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    return sum((mrec[i] - mrec[i - 1]) * mprec[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])


def average_precision_detection(
    gts: Sequence[Span],
    preds: Sequence[tuple[float, float, float]],
    thresholds: Sequence[float] = QVH_MAP_THRESHOLDS,
) -> list[float]:
    """AP of one query's scored windows `(start, end, score)` at each IoU threshold.

    As Moment-DETR's `compute_average_precision_detection` (from MMAction2): windows sorted by score
    (stable), each matched to the unmatched ground-truth window of highest IoU if that IoU reaches the
    threshold, else a false positive; a window whose best-IoU ground truth is taken tries the next;
    recall is over all ground-truth windows. No prediction gives AP 0.

    >>> average_precision_detection([(0, 10)], [(0, 10, 0.9), (0, 10, 0.8)], thresholds=(0.5,))
    [1.0]
    >>> average_precision_detection([(0, 10), (20, 30)], [(40, 50, 0.9), (0, 10, 0.5)], thresholds=(0.5,))
    [0.25]
    """
    if not preds or not gts:
        return [0.0] * len(thresholds)
    ordered = sorted(preds, key=lambda w: -w[2])
    out = []
    for t in thresholds:
        locked = [False] * len(gts)
        tp: list[int] = []
        for s, e, _ in ordered:
            ious = [span_iou((s, e), g) for g in gts]
            hit = 0
            for j in sorted(range(len(gts)), key=lambda j: -ious[j]):
                if ious[j] < t - EPS:
                    break
                if locked[j]:
                    continue
                locked[j], hit = True, 1
                break
            tp.append(hit)
        cum_tp = 0
        precision, recall = [], []
        for k, hit in enumerate(tp, start=1):
            cum_tp += hit
            precision.append(cum_tp / k)
            recall.append(cum_tp / len(gts))
        out.append(interpolated_average_precision(precision, recall))
    return out


def qvhighlights_metrics(
    preds: Sequence[Sequence[tuple[float, float, float]]], gts: Sequence[Sequence[Span]]
) -> dict[str, float]:
    """QVHighlights moment retrieval as standalone_eval's "full" range reports it.

    - mAP: AP per query over IoU 0.50:0.05:0.95 of its first 10 scored windows (`max_pred_windows=10`,
      truncated in submission order, then sorted by score), averaged over queries, then thresholds;
      also mAP@0.5 and mAP@0.75.
    - R1@0.5/0.7: the *first* window of each prediction list (not the best scored, as the official
      `compute_mr_r1`) against the ground-truth window it overlaps most.
    A query without predicted windows scores 0 (the official script would fail on it).

    >>> m = qvhighlights_metrics([[(0, 10, 1.0)], [(5, 15, 1.0)]], [[(0, 10)], [(0, 10)]])
    >>> m["R1@0.5"], m["R1@0.7"], m["mAP"], m["mAP@0.5"]
    (0.5, 0.5, 0.5, 0.5)
    """
    per_query = []
    r1 = []
    for p, g in zip(preds, gts, strict=True):
        windows = list(p)[:QVH_MAX_PRED_WINDOWS]
        per_query.append(average_precision_detection(g, windows))
        r1.append(best_iou(windows[0][:2], g) if windows else 0.0)
    by_threshold = [_mean(q[i] for q in per_query) for i in range(len(QVH_MAP_THRESHOLDS))]
    return {
        "R1@0.5": recall_at(r1, 0.5),
        "R1@0.7": recall_at(r1, 0.7),
        "mAP": _mean(by_threshold),
        "mAP@0.5": by_threshold[QVH_MAP_THRESHOLDS.index(0.5)],
        "mAP@0.75": by_threshold[QVH_MAP_THRESHOLDS.index(0.75)],
    }


# --- accuracy, format rate and the paper's dependency diagnostics -------------------------------------


def accuracy(scores: Iterable[float]) -> float:
    """Mean of per-item answer scores (1 right, 0 wrong, or partial credit); 0 for none.

    >>> accuracy([1, 0, 1, 1])
    0.75
    """
    return _mean(float(s) for s in scores)


def accuracy_by_family(families: Sequence[str], scores: Sequence[float]) -> dict[str, float]:
    """Accuracy per question family, families in sorted order.

    >>> accuracy_by_family(["order", "count", "order"], [1, 0, 0])
    {'count': 0.0, 'order': 0.5}
    """
    groups: dict[str, list[float]] = {}
    for family, score in zip(families, scores, strict=True):
        groups.setdefault(family, []).append(float(score))
    return {family: _mean(groups[family]) for family in sorted(groups)}


def format_rate(format_ok: Iterable[bool]) -> float:
    """Fraction of outputs that followed the answer format.

    >>> format_rate([True, False, True, True])
    0.75
    """
    return _mean(1.0 if ok else 0.0 for ok in format_ok)


def video_dependency(acc_full: float, acc_blind: float) -> float:
    """Accuracy with the video minus accuracy from the question alone (the paper's video dependency).

    >>> round(video_dependency(0.62, 0.41), 2)
    0.21
    """
    return acc_full - acc_blind


def key_necessity(acc_full: float, acc_masked: float) -> float:
    """`Acc_full - Acc_mask`: how much accuracy is lost when the evidence span is masked out.

    >>> round(key_necessity(0.62, 0.34), 2)
    0.28
    """
    return acc_full - acc_masked


def key_specificity(acc_key_only: float, acc_random_span: float) -> float:
    """`Acc_key - Acc_rand`: accuracy given only the evidence span minus only a random span of its length.

    >>> round(key_specificity(0.58, 0.32), 2)
    0.26
    """
    return acc_key_only - acc_random_span


def dependency_diagnostics(accuracies: Mapping[str, float]) -> dict[str, float]:
    """The three diagnostics from accuracies keyed full / blind / masked / key_only / random_span;
    a diagnostic whose inputs are absent is left out rather than reported as 0.

    >>> dependency_diagnostics({"full": 0.75, "blind": 0.5, "masked": 0.25})
    {'video_dependency': 0.25, 'key_necessity': 0.5}
    """
    out: dict[str, float] = {}
    a = accuracies
    if "full" in a and "blind" in a:
        out["video_dependency"] = video_dependency(a["full"], a["blind"])
    if "full" in a and "masked" in a:
        out["key_necessity"] = key_necessity(a["full"], a["masked"])
    if "key_only" in a and "random_span" in a:
        out["key_specificity"] = key_specificity(a["key_only"], a["random_span"])
    return out
