"""Metric rows of the store: write a checkpoint's figures for one split, read a run's figures back.

A figure is keyed by (run, checkpoint, split, name): writing it again replaces the old row, so
re-running an evaluation never leaves two values for the same figure; a figure set computed as a whole
(held-out, diagnostics, a benchmark) replaces the checkpoint's earlier set for that split.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from store.tables import Metric


def write_metrics(
    session: Session,
    run_id: int,
    round_id: int | None,
    checkpoint_id: int | None,
    split: str,
    values: Mapping[str, float],
    whole_split: bool = False,
) -> None:
    """Store `values` as Metric rows, replacing rows of the same run, checkpoint, split and name; with
    `whole_split`, every earlier row of that checkpoint and split (a figure set that is recomputed as a
    whole, so a family no longer present does not linger)."""
    if not values and not whole_split:
        return
    stmt = delete(Metric).where(Metric.run_id == run_id, Metric.split == split)
    if not whole_split:
        stmt = stmt.where(Metric.name.in_(list(values)))
    stmt = stmt.where(
        Metric.checkpoint_id.is_(None) if checkpoint_id is None else Metric.checkpoint_id == checkpoint_id
    )
    if checkpoint_id is None:
        stmt = stmt.where(Metric.round_id.is_(None) if round_id is None else Metric.round_id == round_id)
    session.execute(stmt)
    session.add_all(
        Metric(
            run_id=run_id,
            round_id=round_id,
            checkpoint_id=checkpoint_id,
            name=name,
            value=float(value),
            split=split,
        )
        for name, value in values.items()
    )


@dataclass(frozen=True)
class MetricValue:
    """One stored figure."""

    checkpoint_id: int | None
    round_id: int | None
    split: str
    name: str
    value: float


def read_metrics(session: Session, run_id: int) -> list[MetricValue]:
    """Every figure of a run, oldest first (a later row for the same key wins where callers dedupe)."""
    rows = session.execute(
        select(Metric.checkpoint_id, Metric.round_id, Metric.split, Metric.name, Metric.value)
        .where(Metric.run_id == run_id)
        .order_by(Metric.id)
    )
    return [MetricValue(*row) for row in rows]
