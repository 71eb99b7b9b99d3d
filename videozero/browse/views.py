"""What the browser's pages show, built from plain rows and report objects: the question filters read
from a URL, a round's line on the run page, attempts summarised per checkpoint and mode, and the
checkpoint comparison's rows (held-out accuracy per family with its standard error and the constant).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from store.queries import QuestionFilter
from videozero.browse.timeline import MODES
from videozero.errors import VideozeroError
from videozero.reports.comparison import Report, checkpoint_label
from videozero.reports.summary import RoundSummary

# The question filters of `qa list`, as URL parameters: (parameter, QuestionFilter field, kind).
FILTERS = (
    ("run", "run", str),
    ("round", "round", int),
    ("family", "family", str),
    ("status", "status", str),
    ("split", "split", str),
    ("writer", "writer", str),
    ("level_min", "level_min", int),
    ("level_max", "level_max", int),
    ("video", "video", str),
    ("search", "text", str),
)
MAX_FILTER_CHARS = 500


def filter_from_params(params: Mapping[str, str]) -> QuestionFilter:
    """The QuestionFilter named by a page's query string; empty values are no filter. A value that
    cannot be one raises VideozeroError naming the parameter."""
    values: dict[str, Any] = {}
    for param, name, kind in FILTERS:
        raw = params.get(param, "")
        if raw == "":
            continue
        if len(raw) > MAX_FILTER_CHARS:
            raise VideozeroError(
                f"The {param} filter is longer than {MAX_FILTER_CHARS} characters: shorten it."
            )
        if kind is int:
            try:
                values[name] = int(raw.strip())
            except ValueError:
                raise VideozeroError(
                    f"The {param} filter '{raw}' is not a whole number: give one, e.g. 2."
                ) from None
        else:
            values[name] = raw
    flt = QuestionFilter(**values)
    flt.validate()
    return flt


@dataclass
class RoundView:
    """One round's line on the run page."""

    index: int
    started_at: Any
    finished_at: Any
    stages: list[dict[str, Any]]  # name, status, seconds, details
    counts: dict[str, dict[str, int]]  # family -> status -> n
    heldout: dict[str, float]
    constants: dict[str, float]
    changes: dict[str, Any]
    validation: dict[str, float]
    decisions: list[dict[str, Any]]  # family, level, weight, reason, measured
    checkpoint: str = ""
    start_note: str = ""
    writes: dict[str, float] = field(default_factory=dict)


def round_view(row: Mapping[str, Any], summary: RoundSummary) -> RoundView:
    """A round's stored record (`rounds` row) and figures (`round_summary`) as the run page shows them."""
    stages = []
    for name, value in (row.get("stages") or {}).items():
        if not isinstance(value, dict) or name == "resources":
            continue
        details = {
            k: v
            for k, v in value.items()
            if k not in ("status", "seconds") and not isinstance(v, dict | list)
        }
        stages.append(
            {
                "name": name,
                "status": value.get("status", ""),
                "seconds": value.get("seconds"),
                "details": details,
            }
        )
    curriculum = row.get("curriculum") or {}
    measured = curriculum.get("measured") or {}
    decisions = [
        {
            "family": family,
            "level": state.get("level"),
            "weight": state.get("weight"),
            "reason": state.get("reason", ""),
            "measured": measured.get(family) or {},
        }
        for family, state in sorted((curriculum.get("families") or {}).items())
        if isinstance(state, dict)
    ]
    return RoundView(
        index=int(row["round_index"]),
        started_at=row.get("started_at"),
        finished_at=row.get("finished_at"),
        stages=stages,
        counts={family: dict(counter) for family, counter in sorted(summary.counts.items())},
        heldout=summary.heldout,
        constants=summary.constants,
        changes=summary.changes,
        validation=summary.validation,
        decisions=decisions,
        checkpoint=summary.checkpoint,
        start_note=summary.start_note,
        writes=summary.writes,
    )


def labelled(attempts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Attempt rows with "checkpoint", the name the reports give their checkpoint (warmup, round 0, ...),
    ordered by checkpoint, mode (as MODES lists them) and sample."""
    order = {mode: i for i, mode in enumerate(MODES)}
    ordered = sorted(
        attempts,
        key=lambda a: (int(a["checkpoint_id"]), order.get(str(a["mode"]), len(order)), a["sample_index"]),
    )
    return [
        {
            **a,
            "checkpoint": checkpoint_label(
                str(a.get("checkpoint_stage") or ""),
                a.get("checkpoint_round"),
                int(a["checkpoint_id"]),
                a.get("checkpoint_path"),
            ),
        }
        for a in ordered
    ]


def attempt_groups(attempts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Labelled attempts per (checkpoint, mode): how many, format rate, accuracy, mean IoU and reward."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for a in attempts:
        groups.setdefault((str(a["checkpoint"]), str(a["mode"])), []).append(a)

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    return [
        {
            "checkpoint": checkpoint,
            "mode": mode,
            "n": len(rows),
            "format_rate": mean([1.0 if r.get("format_ok") else 0.0 for r in rows]),
            "accuracy": mean([1.0 if r["correct"] else 0.0 for r in rows if r.get("correct") is not None]),
            "mean_iou": mean([float(r["iou"]) for r in rows if r.get("iou") is not None]),
            "mean_reward": mean([float(r["reward"]) for r in rows if r.get("reward") is not None]),
        }
        for (checkpoint, mode), rows in groups.items()
    ]


@dataclass
class ComparisonRow:
    """A held-out figure across checkpoints: each column's value and standard error, the constant."""

    family: str  # "all" or a family
    figure: str  # accuracy or mIoU
    n: int | None
    constant: float | None
    cells: list[tuple[float | None, float | None, Any]]  # (value, standard error, paired change)


def comparison_rows(report: Report, figures: Sequence[str] = ("accuracy", "mIoU")) -> list[ComparisonRow]:
    """Held-out accuracy and mIoU, overall then per family, one cell per checkpoint. Accuracy's standard
    error is the binomial one over the family's n held-out questions; the paired change is against the
    report's reference (the warm-up)."""
    names = sorted({n.rpartition("/")[0] for s, n in report.values if s == "heldout" and "/" in n})
    out = []
    for family in ["", *names]:
        prefix = f"{family}/" if family else ""
        count = report.values.get(("heldout", f"{prefix}n"), {})
        for figure in figures:
            per = report.values.get(("heldout", f"{prefix}{figure}"))
            if not per:
                continue
            cells = []
            for column in report.columns:
                value, n = per.get(column.label), count.get(column.label)
                se = (
                    math.sqrt(max(value * (1 - value), 0.0) / n)
                    if figure == "accuracy" and value is not None and n
                    else None
                )
                change = report.changes.get(column.label, {}).get(f"{prefix}{figure}")
                cells.append((value, se, change))
            ns = [int(v) for v in count.values() if v is not None]
            out.append(
                ComparisonRow(
                    family or "all",
                    figure,
                    max(ns) if ns else None,
                    report.baseline(f"{prefix}{figure}"),
                    cells,
                )
            )
    return out
