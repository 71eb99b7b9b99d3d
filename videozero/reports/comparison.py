"""The side-by-side report of a run: every figure of every solver checkpoint (base, warm-up, round 0,
1, ...) as a table and as a PNG plot, so a user sees whether the rounds helped."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from videozero.errors import VideozeroError
from videozero.evaluation.baselines import PairedChange
from videozero.evaluation.heldout import HeldoutComparison

STAGE_ORDER = {"base": 0, "warmup": 1, "grpo": 2, "preference": 2}  # a round: GRPO, then its DPO
SPLIT_ORDER = {"heldout": 0, "validation": 1, "diagnostics": 2, "train": 3}
# Figures drawn in the plot (the table shows every figure).
PLOTTED = (
    "accuracy",
    "mIoU",
    "R1@0.5",
    "format_rate",
    "video_dependency",
    "key_necessity",
    "key_specificity",
    "Acc@QA",
    "Acc@GQA",
    "mAP",
)

# Per-family figures shown in the table (all are stored).
FAMILY_ROWS = ("accuracy", "mIoU")

Key = tuple[str, str]  # (split, name)


@dataclass(frozen=True)
class Column:
    """One model in the report: a stored checkpoint (with its stage and round) or a model evaluated
    without being a checkpoint of the run (checkpoint_id None)."""

    label: str
    checkpoint_id: int | None = None
    stage: str = ""
    round_index: int | None = None
    path: str = ""


def checkpoint_label(stage: str, round_index: int | None, checkpoint_id: int, path: str | None = None) -> str:
    """ "base", "warmup", "round N", "round N DPO" (its preference stage), a model scored beside the run by its directory's name, else the stage
    and id."""
    if stage == "grpo" and round_index is not None:
        return f"round {round_index}"
    if stage == "preference" and round_index is not None:
        return f"round {round_index} DPO"
    if stage in ("base", "warmup"):
        return stage
    if stage == "external" and path:
        return Path(path).name or path
    return f"{stage or 'checkpoint'} {checkpoint_id}"


def columns_of(rows: Sequence[Any]) -> list[Column]:
    """Checkpoint rows (id, stage, round_index, path) as columns in training order: base, warm-up, then
    rounds by index."""
    rows = list(rows)
    rows.sort(
        key=lambda r: (STAGE_ORDER.get(r.stage, 3), r.round_index if r.round_index is not None else -1, r.id)
    )
    columns, seen = [], set()
    for cid, stage, round_index, path in rows:
        label = checkpoint_label(stage, round_index, cid, path)
        if label in seen:
            label = f"{label} (#{cid})"
        seen.add(label)
        columns.append(Column(label, cid, stage, round_index, path))
    return columns


@dataclass
class Report:
    """Figures keyed by (split, name), one value per column label; columns in training order. For the
    held-out split, `baselines` holds the best-constant figures of the held-out set (`constant_accuracy`,
    `<family>/constant_mIoU`, ...) and `changes` each column's paired change of a figure against the
    `reference` column (the warm-up)."""

    run: str
    columns: list[Column]
    values: dict[Key, dict[str, float]] = field(default_factory=dict)
    baselines: dict[str, float] = field(default_factory=dict)
    reference: str | None = None
    changes: dict[str, dict[str, PairedChange]] = field(default_factory=dict)

    def baseline(self, name: str) -> float | None:
        """The best-constant figure beside held-out figure `name` (accuracy, mIoU, `<family>/...`)."""
        head, _, tail = name.rpartition("/")
        return self.baselines.get(f"{head}/constant_{tail}" if head else f"constant_{tail}")

    def rows(self) -> list[Key]:
        """Rows in reading order: held-out, diagnostics, benchmarks, train; overall figures before families."""

        def order(key: Key) -> tuple:
            split, name = key
            return (
                SPLIT_ORDER.get(split, 2),
                split,
                "/" in name,
                name.split("/")[0] if "/" in name else "",
                name,
            )

        return sorted(self.values, key=order)


def build_report(
    run_name: str,
    columns: Sequence[Column],
    metrics: Sequence[Any],
    comparison: Callable[[list[int], int | None], HeldoutComparison],
    extra: Sequence[tuple[Column, Mapping[Key, float]]] = (),
) -> Report:
    """The report of a run from its checkpoint columns and stored metrics (`checkpoint_id`, `split`,
    `name`, `value`): the columns that have figures, the warm-up (else the base) as the reference, the
    held-out baselines and paired changes from `comparison(checkpoint ids, reference id)`, plus `extra`
    models evaluated outside the run (shown in their own columns, not stored)."""
    label = {c.checkpoint_id: c.label for c in columns}
    values: dict[Key, dict[str, float]] = {}
    for m in metrics:
        if m.checkpoint_id in label:
            values.setdefault((m.split, m.name), {})[label[m.checkpoint_id]] = m.value
    used = {lab for per in values.values() for lab in per}
    shown = [c for c in columns if c.label in used]
    heldout = {lab for (split, _), per in values.items() if split == "heldout" for lab in per}
    ref = next((c for c in shown if c.stage == "warmup" and c.label in heldout), None) or next(
        (c for c in shown if c.stage == "base" and c.label in heldout), None
    )
    compared = comparison([c.checkpoint_id for c in shown], ref.checkpoint_id if ref else None)
    for column, figures in extra:
        shown.append(column)
        for key, value in figures.items():
            values.setdefault(key, {})[column.label] = value
    return Report(
        run_name,
        shown,
        values,
        baselines=compared.baselines,
        reference=ref.label if ref else None,
        changes={label[cid]: ch for cid, ch in compared.changes.items() if cid in label},
    )


def _cell(value: float | None, name: str) -> str:
    if value is None:
        return "-"
    if name == "n" or name.endswith(("_n", "/n")):
        return f"{value:.0f}"
    return f"{value:.3f}"


def report_table(report: Report) -> Table:
    """A rich table: one row per overall figure and per family's accuracy and mIoU, one column per model;
    held-out accuracy and mIoU show the set's best constant guess beside them and, in a row below, each
    model's paired change against the warm-up (± its standard error; bold beyond two)."""
    table = Table(
        title=f"evaluation of run {report.run}" if report.run else "evaluation",
        title_justify="left",
        caption=(
            f"constant: the best constant answer (span) of the held-out set, per family; "
            f"Δ: paired change against {report.reference} ± standard error"
            if report.baselines
            else None
        ),
    )
    table.add_column("split")
    table.add_column("figure")
    if report.baselines:
        table.add_column("constant", justify="right", style="dim")
    for column in report.columns:
        table.add_column(column.label, justify="right")
    for split, name in report.rows():
        if "/" in name and name.rsplit("/", 1)[1] not in FAMILY_ROWS:
            continue
        per = report.values[(split, name)]
        heldout = split == "heldout" and name.rpartition("/")[2] in FAMILY_ROWS
        lead = [_cell(report.baseline(name), name) if heldout else ""] if report.baselines else []
        table.add_row(split, name, *lead, *(_cell(per.get(c.label), name) for c in report.columns))
        if heldout and report.changes:
            cells = []
            for c in report.columns:
                change = report.changes.get(c.label, {}).get(name)
                cells.append(
                    "-" if change is None else Text(str(change), style="bold" if change.significant else "")
                )
            table.add_row(split, f"  Δ {name}", *([""] if report.baselines else []), *cells)
    return table


def report_plot(report: Report, path: Path) -> Path:
    """A PNG with one panel per split: the main figures of each model, models in training order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = sorted({s for s, n in report.values if n in PLOTTED}, key=lambda s: (SPLIT_ORDER.get(s, 2), s))
    if not splits or not report.columns:
        raise VideozeroError(
            f"run {report.run or '(none)'} has no figures to plot yet: evaluate a checkpoint first."
        )
    labels = [c.label for c in report.columns]
    fig, axes = plt.subplots(1, len(splits), figsize=(4.5 * len(splits) + 1, 4), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        for name in PLOTTED:
            per = report.values.get((split, name))
            if not per:
                continue
            xs = [i for i, lab in enumerate(labels) if lab in per]
            ys = [per[labels[i]] for i in xs]
            paired = split == "heldout" and name in FAMILY_ROWS
            errs = [
                (report.changes.get(labels[i], {}).get(name) or PairedChange(0.0, 0.0, 0)).se
                if paired
                else 0.0
                for i in xs
            ]
            line = ax.errorbar(xs, ys, yerr=errs if any(errs) else None, marker="o", capsize=3, label=name)
            constant = report.baseline(name) if paired else None
            if constant is not None:
                ax.axhline(
                    constant, linestyle="--", linewidth=1, color=line.lines[0].get_color(),
                    label=f"{name}: best constant",
                )  # fmt: skip
        low = min(
            (v for (s, _), per in report.values.items() if s == split for v in per.values()), default=0.0
        )
        ax.set_ylim(min(-1.05 if split == "diagnostics" else -0.05, low - 0.05), None)
        ax.set_title(split)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        ax.axhline(0.0, color="grey", linewidth=0.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    title = f"run {report.run}: figures per checkpoint" if report.run else "figures per model"
    if report.changes:
        title += f" (held-out error bars: paired SE against {report.reference})"
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise VideozeroError(f"cannot write the plot {path} ({exc.strerror}): pass another --out.") from None
    finally:
        plt.close(fig)
    return path
