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
        if "\x00" in raw:  # PostgreSQL text cannot hold it; no question's text has it
            raise VideozeroError(f"The {param} filter holds a NUL character: remove it.")
        if kind is int:
            try:
                values[name] = int(raw.strip())
            except ValueError:
                raise VideozeroError(
                    f"The {param} filter '{raw}' is not a whole number: give one, e.g. 2."
                ) from None
            if not -(2**31) <= values[name] < 2**31:
                raise VideozeroError(f"The {param} filter {raw} is out of range: give a smaller number.")
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
    decisions: list[dict[str, Any]]  # family, level, weight, reason, measured
    checkpoint: str = ""  # the column of the run's report that is this round's solver
    heldout: dict[str, float] = field(default_factory=dict)
    changes: dict[str, Any] = field(default_factory=dict)
    validation: float | None = None

    @property
    def accuracy_se(self) -> float | None:
        """The binomial standard error of the held-out accuracy."""
        p, n = self.heldout.get("accuracy"), self.heldout.get("n")
        return math.sqrt(max(p * (1 - p), 0.0) / n) if p is not None and n else None


def round_view(
    row: Mapping[str, Any], counts: Sequence[tuple[Any, str, str, int]], report: Report
) -> RoundView:
    """A round's stored record (`rounds` row), its questions counted (`round_question_counts` rows of the
    run) and its solver's figures in the run's report, as the run page shows them."""
    index = int(row["round_index"])
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
    by_family: dict[str, dict[str, int]] = {}
    for round_index, family, status, n in counts:
        if round_index == index:
            by_family.setdefault(family, {})[status] = n
    view = RoundView(
        index,
        row.get("started_at"),
        row.get("finished_at"),
        stages,
        dict(sorted(by_family.items())),
        decisions,
    )
    # the round's last checkpoint: its GRPO, or the preference DPO after it
    ends = [c for c in report.columns if c.stage in ("grpo", "preference") and c.round_index == index]
    column = ends[-1] if ends else None
    if column is not None:
        view.checkpoint = column.label
        view.heldout = {
            name: per[column.label]
            for (split, name), per in report.values.items()
            if split == "heldout" and "/" not in name and column.label in per
        }
        view.changes = report.changes.get(column.label, {})
        view.validation = report.values.get(("validation", "accuracy"), {}).get(column.label)
    return view


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
