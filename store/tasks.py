"""Where the tasks of fanned-out stages ran (`tasks` table): written by the stage that fanned them out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from store.tables import TaskRun


def record_tasks(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert task rows (dicts of TaskRun columns)."""
    if rows:
        session.execute(insert(TaskRun), list(rows))


def task_nodes(session: Session, run_id: int | None, stage: str) -> dict[str, int]:
    """How many of a stage's tasks ran on each node (of one run, or of none: `videozero mine`)."""
    stmt = select(TaskRun.node, func.count()).where(TaskRun.stage == stage).group_by(TaskRun.node)
    stmt = stmt.where(TaskRun.run_id.is_(None) if run_id is None else TaskRun.run_id == run_id)
    return {str(node): int(n) for node, n in session.execute(stmt)}


def task_rows(session: Session, run_id: int | None = None) -> list[dict[str, Any]]:
    """Every task row (of one run, or all), oldest first, as plain dicts."""
    stmt = select(TaskRun).order_by(TaskRun.id)
    if run_id is not None:
        stmt = stmt.where(TaskRun.run_id == run_id)
    return [
        {c: getattr(t, c) for c in ("run_id", "stage", "item", "executor", "node", "pid", "seconds")}
        for t in session.scalars(stmt)
    ]
