"""What the stages stored, read back for the user: a round's figures (`round_summary`), every checkpoint's
figures side by side (`run_report`, and `run_plot` / `comparison_table` from a run's config), what the
questioner's warm-up measured (`learner_writes`) and which videos got no question and why
(`video_coverage`). The objects are `videozero.reports`'s; so are the tables, markdown and plots."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from rich.table import Table

from store import Store, StoreError
from store.checkpoints import checkpoint_rows, latest_checkpoint_id, latest_solver
from store.metrics import read_metrics
from store.questions import round_outcomes, video_outcomes
from store.runs import round_row, run_video_rows
from store.tables import Checkpoint, Run
from videozero.errors import VideozeroError
from videozero.questioner.families import family_support
from videozero.reports.comparison import (
    Column,
    Key,
    Report,
    build_report,
    columns_of,
    report_plot,
    report_table,
)
from videozero.reports.coverage import MIN_REPORTED_S, VideoCoverage
from videozero.reports.summary import RoundSummary, checkpoint_name, write_figures
from videozero.run_config import RunConfig
from videozero.stages.evaluate import run_comparison
from videozero.stages.evidence import load_video_evidence
from videozero.stages.run import open_run_store, run_id_of


def run_columns(store: Store, run_id: int, role: str = "solver") -> list[Column]:
    """The run's checkpoints of `role` in training order: base, warm-up, then rounds by index."""
    with store.session() as s:
        return columns_of(checkpoint_rows(s, run_id, role))


def run_report(
    store: Store, run_id: int, run_name: str, extra: Sequence[tuple[Column, Mapping[Key, float]]] = ()
) -> Report:
    """The stored figures of every checkpoint of the run that has any, plus `extra` models evaluated
    outside the run (shown in their own columns, not stored)."""
    with store.session() as s:
        return build_report(
            run_name,
            columns_of(checkpoint_rows(s, run_id, "solver")),
            read_metrics(s, run_id),
            lambda ids, reference: run_comparison(s, run_id, ids, reference),
            extra,
        )


def learner_writes(store: Store, run_id: int) -> dict[str, float] | None:
    """What the learner stage measured of the questioner's warm-up writes (None without one)."""
    with store.session() as s:
        rnd = round_row(s, run_id, 0)
    stage = ((rnd.stages or {}) if rnd else {}).get("learner")
    writes = stage.get("questioner_writes") if isinstance(stage, dict) else None
    return writes if isinstance(writes, dict) else None


def round_summary(store: Store, run_id: int, round_index: int) -> RoundSummary:
    """The stored figures of one round of a run."""
    with store.session() as s:
        run = s.get(Run, run_id)
        rnd = round_row(s, run_id, round_index)
        out = RoundSummary(run.name if run else str(run_id), round_index)
        if rnd is None:
            return out
        rows = round_outcomes(s, rnd.id)
        for r in rows:
            out.counts[r.family][r.status] += 1
        out.writes = write_figures(rows)
        for name, value in (rnd.stages or {}).items():
            if name == "resources" and isinstance(value, dict):
                out.resources = {k: float(v) for k, v in value.items() if isinstance(v, int | float)}
            elif isinstance(value, dict):
                if name == "preference":
                    out.preference = dict(value)
                out.seconds[name] = float(value.get("seconds", 0.0) or 0.0)
                out.stage_status[name] = str(value.get("status", ""))
        cur = rnd.curriculum or {}
        for family, state in (cur.get("families") or {}).items():
            out.levels[family] = int(state.get("level", 0))
            out.reasons[family] = str(state.get("reason", ""))
        metrics = read_metrics(s, run_id)
        solver = (rnd.stages or {}).get("solver")
        start = solver.get("from") if isinstance(solver, dict) else None
        if start is not None:
            row = s.get(Checkpoint, int(start))
            out.started_from = checkpoint_name(row.path, row.stage) if row else str(start)
    try:
        ckpt, path = latest_solver(store, run_id, round_index + 1)
        before, _ = latest_solver(store, run_id, round_index)
    except StoreError:  # no solver checkpoint yet
        return out
    out.checkpoint = "/".join(Path(path).parts[-2:])  # e.g. round-0/solver
    if start is not None and int(start) != before and round_index > 0:
        out.start_note = (
            f"started from {out.started_from}, which scored higher on the validation questions than "
            "the last round's checkpoint"
        )
    with store.session() as s:
        reference = latest_checkpoint_id(s, run_id, "warmup")
        comparison = run_comparison(s, run_id, [ckpt], reference)
        out.validation_constant = run_comparison(s, run_id, [], None, "validation").baselines.get(
            "constant_accuracy"
        )
    out.constants = comparison.baselines
    out.changes = comparison.changes.get(ckpt, {})
    for m in metrics:
        if m.checkpoint_id != ckpt:
            continue
        if m.split == "heldout":
            out.heldout[m.name] = m.value
        elif m.split == "validation":
            out.validation[m.name] = m.value
        elif m.split == "diagnostics" and m.round_id == rnd.id:
            out.diagnostics[m.name] = m.value
    return out


def run_plot(config: RunConfig) -> Path | None:
    """The run's figures per checkpoint as a PNG under the run directory (None before any figure)."""
    store = open_run_store(config)
    try:
        run_id = run_id_of(store, config.run_name)
        report = run_report(store, run_id, config.run_name)
        try:
            return report_plot(report, config.run_dir / "metrics.png")
        except VideozeroError:
            return None
    finally:
        store.dispose()


def comparison_table(config: RunConfig) -> Table:
    """Held-out figures of the base, warmed-up and per-round checkpoints side by side."""
    store = open_run_store(config)
    try:
        report = run_report(store, run_id_of(store, config.run_name), config.run_name)
        return report_table(report)
    finally:
        store.dispose()


def video_coverage(
    store: Store, run_id: int, families: Sequence[str], cache_dir: str | Path | None = None
) -> list[VideoCoverage]:
    """Every video of the run (and every input that could not be mined) with its question counts; a
    video of MIN_REPORTED_S or more without an accepted question gets the reason."""
    with store.session() as s:
        videos = run_video_rows(s, run_id)
        rows = video_outcomes(s, run_id)
        first = round_row(s, run_id, 0)
    mine = ((first.stages or {}) if first else {}).get("mine")
    errors = mine.get("errors", []) if isinstance(mine, dict) else []
    stored: Counter[int] = Counter(r.video_id for r in rows)
    accepted: Counter[int] = Counter(r.video_id for r in rows if r.status == "accepted")
    rejected: dict[int, Counter[str]] = {}
    for r in rows:
        if r.status != "accepted" and r.reject_reason:
            rejected.setdefault(r.video_id, Counter())[r.reject_reason.split(":")[0]] += 1
    out = []
    for video_id, split, path, duration in videos:
        item = VideoCoverage(path, split, duration, stored[video_id], accepted[video_id])
        if not item.accepted and (duration or 0.0) >= MIN_REPORTED_S:
            item.reason = _why_none(store, video_id, split, families, cache_dir, rejected.get(video_id))
        out.append(item)
    for line in errors:
        path, _, error = str(line).partition(": ")
        out.append(VideoCoverage(path, "-", None, 0, 0, f"not mined: {error}"))
    return out


def _why_none(
    store: Store,
    video_id: int,
    split: str,
    families: Sequence[str],
    cache_dir: str | Path | None,
    rejected: Counter | None,
) -> str:
    """Why a video has no accepted question ('' for a training video no round has asked about yet)."""
    if rejected:
        top = ", ".join(f"{why} ({n})" for why, n in rejected.most_common(2))
        return f"all {sum(rejected.values())} proposed questions were rejected: {top}"
    try:
        ev = load_video_evidence(store, video_id, cache_dir)
    except VideozeroError as exc:
        return str(exc)
    support = family_support(ev, families)
    lacking = [f"{f}: {why}" for f, why in support.items() if why]
    if len(lacking) == len(support):
        return "; ".join(lacking)
    if split == "train":
        return ""
    return (
        "the families it supports ("
        + ", ".join(f for f, why in support.items() if not why)
        + ") gave only questions with degenerate evidence (most of the video)"
    )
