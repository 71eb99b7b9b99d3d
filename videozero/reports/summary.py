"""What a round did (read back from the store by `stages.report.round_summary`): questions by family,
held-out figures, the paper's diagnostics, curriculum levels and their reasons, seconds per stage. Shown
as the closing table of `videozero iterate`, as Prefect artifacts (rows and markdown), and as the run's
plot."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from videozero.evaluation.baselines import PairedChange


@dataclass
class RoundSummary:
    run: str
    round_index: int
    checkpoint: str = ""
    counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    heldout: dict[str, float] = field(default_factory=dict)
    diagnostics: dict[str, float] = field(default_factory=dict)
    levels: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    stage_status: dict[str, str] = field(default_factory=dict)
    constants: dict[str, float] = field(default_factory=dict)
    changes: dict[str, PairedChange] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)
    writes: dict[str, float] = field(default_factory=dict)
    validation_constant: float | None = None
    started_from: str = ""
    start_note: str = ""
    resources: dict[str, float] = field(default_factory=dict)  # what the process held after the round
    preference: dict[str, Any] = field(default_factory=dict)  # the preference stage's record (pairs, DPO)


def write_figures(rows) -> dict[str, float]:
    """The questioner's side of a round: model writes, how many parsed and were accepted, their mean
    r_Q, and how often the solver's consensus agreed with the constructed answer of template questions."""
    model = [r for r in rows if r.writer == "model"]
    parsed = [r for r in model if not (r.reject_reason or "").startswith("unparseable")]
    scored = [r.r_q for r in model if r.r_q is not None]
    verified = [r for r in rows if r.writer == "template" and r.consensus_answer is not None]
    out: dict[str, float] = {"writes": len(model), "parsed": len(parsed)}
    out["accepted"] = sum(r.status == "accepted" for r in model)
    if scored:
        out["mean_r_q"] = sum(scored) / len(scored)
    if verified:
        out["consensus_agreement"] = sum(r.consensus_answer == r.answer for r in verified) / len(verified)
        out["verified"] = len(verified)
    return out


def _writes_line(summary: RoundSummary) -> str:
    w = summary.writes
    if not w:
        return "model writes: -"
    line = f"model writes {w['writes']:.0f}: parsed {w['parsed']:.0f}, accepted {w['accepted']:.0f}"
    if "mean_r_q" in w:
        line += f", mean r_Q {w['mean_r_q']:.2f}"
    if "consensus_agreement" in w:
        line += f"; consensus = constructed answer on {w['consensus_agreement']:.2f} of {w['verified']:.0f} template questions"
    return line


def preference_line(summary: RoundSummary) -> str:
    """The round's preference pairs per factor (how many from rollouts) and, when trained, the DPO."""
    p = summary.preference
    pairs = p.get("pairs")
    if not isinstance(pairs, dict):
        return "preference pairs: -"
    line = (
        f"preference pairs {sum(pairs.values())}: "
        + ", ".join(f"{k} {v}" for k, v in pairs.items())
        + f" ({p.get('from_rollouts', 0)} from rollouts)"
    )
    if p.get("steps"):
        line += (
            f"; DPO on {p.get('trained_pairs')} pairs, {p['steps']} steps, loss {_f(p.get('loss_first'), 3)}"
            f" -> {_f(p.get('loss_last'), 3)}"
        )
    return line


def checkpoint_name(path: str, stage: str) -> str:
    """round-0/solver (or round-0/preference) for a round's checkpoint, else its stage (warmup, base)."""
    return "/".join(Path(path).parts[-2:]) if stage in ("grpo", "preference") else stage


def _validation_line(summary: RoundSummary) -> str:
    v = summary.validation
    if not v:
        return "validation: -"
    line = (
        f"validation accuracy {_f(v.get('accuracy'))} (constant {_f(summary.validation_constant)}, "
        f"n {_f(v.get('n'), 0)})"
    )
    return line + (f"; {summary.start_note}" if summary.start_note else "")


def learner_line(writes: dict[str, float] | None) -> str:
    """What the learner stage measured of the questioner's warm-up (`stages.report.learner_writes`), as
    one line ('' without one)."""
    if not isinstance(writes, dict) or not writes.get("writes"):
        return ""
    return (
        f"questioner warm-up: of {writes['writes']:.0f} greedy writes on the validation videos, "
        f"{writes['parsed']:.0%} parse and {writes['on_evidence']:.0%} are about the requested evidence"
    )


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def round_rows(summary: RoundSummary) -> list[dict[str, Any]]:
    """One row per family: generated, accepted, held-out accuracy and mIoU, next level (for a table artifact)."""
    families = sorted(
        set(summary.counts) | set(summary.levels) | {k.split("/")[0] for k in summary.heldout if "/" in k}
    )
    rows = []
    for f in families:
        c = summary.counts.get(f, Counter())
        rows.append(
            {
                "family": f,
                "generated": sum(c.values()),
                "accepted": c["accepted"],
                **_heldout_cells(summary, f"{f}/"),
                "next_level": summary.levels.get(f),
            }
        )
    rows.append(
        {
            "family": "all",
            "generated": sum(r["generated"] for r in rows),
            "accepted": sum(r["accepted"] for r in rows),
            **_heldout_cells(summary, ""),
            "next_level": None,
        }
    )
    return rows


def _heldout_cells(summary: RoundSummary, prefix: str) -> dict[str, Any]:
    acc, iou = summary.changes.get(f"{prefix}accuracy"), summary.changes.get(f"{prefix}mIoU")
    return {
        "heldout_accuracy": summary.heldout.get(f"{prefix}accuracy"),
        "constant_accuracy": summary.constants.get(f"{prefix}constant_accuracy"),
        "accuracy_change": None if acc is None else acc.delta,
        "accuracy_change_se": None if acc is None else acc.se,
        "heldout_mIoU": summary.heldout.get(f"{prefix}mIoU"),
        "constant_mIoU": summary.constants.get(f"{prefix}constant_mIoU"),
        "mIoU_change": None if iou is None else iou.delta,
        "mIoU_change_se": None if iou is None else iou.se,
        "heldout_n": summary.heldout.get(f"{prefix}n"),
    }


def _change(value: float | None, se: float | None) -> str:
    if value is None or se is None:
        return "-"
    text = f"{value:+.2f} ± {se:.2f}"
    return f"[bold]{text}[/]" if abs(value) > 2 * se else text


def round_table(summary: RoundSummary) -> Table:
    """The closing table of a round: per family the questions generated and accepted, held-out accuracy
    and mIoU beside the held-out set's best constant guess and the paired change against the warm-up
    (± standard error, bold beyond two), and the next level."""
    table = Table(
        title=f"run {summary.run!r}, round {summary.round_index}: solver checkpoint {summary.checkpoint or '-'}"
    )
    columns = ("family", "generated", "accepted", "n", "held-out acc", "constant", "Δ acc vs warm-up",
               "held-out mIoU", "constant", "Δ mIoU vs warm-up", "next level")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="left" if col == "family" else "right")
    rows = round_rows(summary)
    for r in rows:
        if r["family"] == "all":
            table.add_section()
        table.add_row(
            r["family"], str(r["generated"]), str(r["accepted"]), _f(r["heldout_n"], 0),
            _f(r["heldout_accuracy"]), _f(r["constant_accuracy"]),
            Text.from_markup(_change(r["accuracy_change"], r["accuracy_change_se"])),
            _f(r["heldout_mIoU"]), _f(r["constant_mIoU"]),
            Text.from_markup(_change(r["mIoU_change"], r["mIoU_change_se"])),
            "-" if r["next_level"] is None else str(r["next_level"]),
        )  # fmt: skip
    d = summary.diagnostics
    table.caption = (
        "constant: the held-out set's best constant answer (span) per family; Δ: paired change against the "
        "warm-up ± SE\n"
        f"{_validation_line(summary)}\n{_writes_line(summary)}\n{preference_line(summary)}\n"
        f"video dependency {_f(d.get('video_dependency'))}, key necessity {_f(d.get('key_necessity'))}, "
        f"key specificity {_f(d.get('key_specificity'))}; format rate {_f(summary.heldout.get('format_rate'))}\n"
        + _resources_line(summary)
        + "seconds: "
        + ", ".join(
            f"{k} {v:.0f}"
            + ("" if summary.stage_status.get(k) in ("done", "") else f" ({summary.stage_status[k]})")
            for k, v in summary.seconds.items()
        )
    )
    return table


def _resources_line(summary: RoundSummary) -> str:
    r = summary.resources
    if not r:
        return ""
    return (
        f"process after the round: {r.get('rss_mb', 0):.0f} MB resident, {r.get('open_files', 0):.0f} open "
        f"files, {r.get('threads', 0):.0f} threads\n"
    )


def round_markdown(summary: RoundSummary) -> str:
    """The round as markdown (a Prefect markdown artifact)."""
    lines = [
        f"# Run `{summary.run}`, round {summary.round_index}",
        "",
        f"Solver after the round: `{summary.checkpoint or '-'}`",
        "",
    ]
    lines += [
        "| family | generated | accepted | n | held-out accuracy | constant | Δ vs warm-up "
        "| held-out mIoU | constant | Δ vs warm-up | next level |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in round_rows(summary):
        acc = (
            _change(r["accuracy_change"], r["accuracy_change_se"])
            .replace("[bold]", "**")
            .replace("[/]", "**")
        )
        iou = _change(r["mIoU_change"], r["mIoU_change_se"]).replace("[bold]", "**").replace("[/]", "**")
        lines.append(
            f"| {r['family']} | {r['generated']} | {r['accepted']} | {_f(r['heldout_n'], 0)} | "
            f"{_f(r['heldout_accuracy'])} | {_f(r['constant_accuracy'])} | {acc} | "
            f"{_f(r['heldout_mIoU'])} | {_f(r['constant_mIoU'])} | {iou} | "
            f"{'-' if r['next_level'] is None else r['next_level']} |"
        )
    d = summary.diagnostics
    lines += [
        "",
        "V" + _validation_line(summary)[1:] + ".",
        "",
        "M" + _writes_line(summary)[1:] + ".",
        "",
        "P" + preference_line(summary)[1:] + ".",
        "",
        f"Diagnostics on the round's accepted questions: video dependency {_f(d.get('video_dependency'))}, "
        f"key necessity {_f(d.get('key_necessity'))}, key specificity {_f(d.get('key_specificity'))}.",
        "",
        "Curriculum: " + "; ".join(f"{f}: {why}" for f, why in sorted(summary.reasons.items()))
        if summary.reasons
        else "",
        "",
        "Seconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in summary.seconds.items()),
    ]
    return "\n".join(lines)
