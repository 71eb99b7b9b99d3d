"""Checkpoint rows: the one writer of a model a run used or produced, and which checkpoint a round starts from.

A checkpoint row names a directory (`path`), its `role` (solver or questioner), its `stage` (`base`,
`warmup`, a round's `grpo` or its `preference` DPO) and, for a round's output, the round. Rows are written get-or-create, so a
resumed stage that records the same directory again gets the same id.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.engine import Store
from store.errors import StoreError
from store.tables import Checkpoint, Metric, Round

ROUND_OUTPUTS = ("grpo", "preference")
"""Stages of a solver checkpoint a round produces: its GRPO, then (when enabled) its preference DPO."""

VALIDATION_SPLIT = "validation"
"""The metric split of the run's validation questions (training videos), on which checkpoints are chosen."""


def stored_path(path: str | Path) -> str:
    """`path` as stored: absolute when it is a local file or directory, unchanged otherwise (a hub id)."""
    local = Path(path).expanduser()
    return str(local.absolute()) if local.exists() else str(path)


def checkpoint_row(
    store: Store,
    path: str | Path,
    stage: str,
    role: str = "solver",
    run_id: int | None = None,
    round_id: int | None = None,
    base_model: str | Path | None = None,
) -> int:
    """The id of the checkpoint row for directory `path` at `stage` in `role` of the run, created once.

    Local directories are stored as absolute paths, so the store still finds them when it is used from
    another directory; a hub id is stored as given."""
    path, base_model = stored_path(path), stored_path(base_model) if base_model is not None else None
    with store.write() as s:
        found = s.scalar(
            select(Checkpoint.id).where(
                Checkpoint.run_id == run_id if run_id is not None else Checkpoint.run_id.is_(None),
                Checkpoint.role == role,
                Checkpoint.path == str(path),
                Checkpoint.stage == stage,
            )
        )
        if found is not None:
            return int(found)
        row = Checkpoint(
            run_id=run_id,
            round_id=round_id,
            role=role,
            stage=stage,
            path=str(path),
            base_model=str(base_model or path),
        )
        s.add(row)
        s.flush()
        return int(row.id)


def checkpoint_of(store: Store, checkpoint_id: int) -> Checkpoint:
    """The checkpoint row `checkpoint_id` (detached: read its fields freely)."""
    with store.session() as s:
        row = s.get(Checkpoint, checkpoint_id)
        if row is None:
            raise StoreError(
                f"checkpoint {checkpoint_id} is not in the store: list them with `videozero eval --model all`."
            )
        s.expunge(row)
        return row


def _solver_rows(store: Store, run_id: int) -> Sequence[Any]:
    with store.session() as s:
        return s.execute(
            select(Checkpoint.id, Checkpoint.path, Checkpoint.stage, Round.round_index)
            .outerjoin(Round, Round.id == Checkpoint.round_id)
            .where(Checkpoint.run_id == run_id, Checkpoint.role == "solver")
        ).all()


def latest_solver(store: Store, run_id: int, round_index: int) -> tuple[int, str]:
    """(checkpoint id, path) of the newest checkpoint (GRPO or preference) of a round before `round_index`, else the
    warm-up, else the base: what round `round_index - 1` ended with."""
    rows = _solver_rows(store, run_id)
    grpo = [
        r
        for r in rows
        if r.stage in ROUND_OUTPUTS and r.round_index is not None and r.round_index < round_index
    ]
    if grpo:
        best = max(grpo, key=lambda r: (r.round_index, r.id))
        return int(best.id), str(best.path)
    for stage in ("warmup", "base"):
        found = [r for r in rows if r.stage == stage]
        if found:
            best = max(found, key=lambda r: r.id)
            return int(best.id), str(best.path)
    raise StoreError(f"run {run_id} has no solver checkpoint yet: the learner stage has not run.")


def validation_accuracy(store: Store, run_id: int) -> dict[int, float]:
    """Checkpoint id -> its accuracy on the run's validation questions (those scored so far)."""
    with store.session() as s:
        return {
            int(c): float(v)
            for c, v in s.execute(
                select(Metric.checkpoint_id, Metric.value).where(
                    Metric.run_id == run_id, Metric.split == VALIDATION_SPLIT, Metric.name == "accuracy"
                )
            )
            if c is not None
        }


def current_solver(store: Store, run_id: int, round_index: int) -> tuple[int, str]:
    """(checkpoint id, path) round `round_index` starts from: what the last round ended with, unless the
    warm-up or an earlier round's checkpoint scored higher on the validation questions (then that one:
    a round that made the solver worse is not built on)."""
    latest = latest_solver(store, run_id, round_index)
    scores = validation_accuracy(store, run_id)
    if latest[0] not in scores:
        return latest
    rows = [
        r
        for r in _solver_rows(store, run_id)
        if r.id in scores
        and (
            r.stage == "warmup"
            or (r.stage in ROUND_OUTPUTS and r.round_index is not None and r.round_index < round_index)
        )
    ]
    best = max(rows, key=lambda r: (scores[r.id], r.id), default=None)
    if best is None or scores[best.id] <= scores[latest[0]]:
        return latest
    return int(best.id), str(best.path)


def current_questioner(store: Store, run_id: int, round_index: int) -> str | None:
    """The newest questioner checkpoint of an earlier round, else the questioner's warm-up (None: the
    questioner is the solver model)."""
    with store.session() as s:
        row = s.execute(
            select(Checkpoint.path)
            .join(Round, Round.id == Checkpoint.round_id)
            .where(
                Checkpoint.run_id == run_id, Checkpoint.role == "questioner", Round.round_index < round_index
            )
            .order_by(Round.round_index.desc(), Checkpoint.id.desc())
        ).first()
        if row is None:
            row = s.execute(
                select(Checkpoint.path)
                .where(
                    Checkpoint.run_id == run_id, Checkpoint.role == "questioner", Checkpoint.stage == "warmup"
                )
                .order_by(Checkpoint.id.desc())
            ).first()
    return str(row[0]) if row else None


def checkpoint_rows(session: Session, run_id: int, role: str = "solver") -> list[Any]:
    """(id, stage, round_index, path) of the run's checkpoints of `role` (named columns)."""
    return session.execute(
        select(Checkpoint.id, Checkpoint.stage, Round.round_index, Checkpoint.path)
        .outerjoin(Round, Round.id == Checkpoint.round_id)
        .where(Checkpoint.run_id == run_id, Checkpoint.role == role)
    ).all()


def latest_checkpoint_id(session: Session, run_id: int, stage: str, role: str = "solver") -> int | None:
    """The newest checkpoint of the run at `stage` in `role` (e.g. the solver's warm-up), if any."""
    return session.scalar(
        select(Checkpoint.id)
        .where(Checkpoint.run_id == run_id, Checkpoint.role == role, Checkpoint.stage == stage)
        .order_by(Checkpoint.id.desc())
    )
