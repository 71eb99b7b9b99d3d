"""Batched writes for the hot paths (questions and their rollouts): one INSERT per batch, ids returned."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from store.tables import Attempt, Question

BATCH = 5_000


def insert_questions(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert question rows (dicts of Question columns); return their new ids in the same order."""
    ids: list[int] = []
    for i in range(0, len(rows), BATCH):
        result = session.execute(
            insert(Question).returning(Question.id, sort_by_parameter_order=True), list(rows[i : i + BATCH])
        )
        ids.extend(result.scalars().all())
    return ids


def insert_attempts(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert attempt rows (dicts of Attempt columns) in batches."""
    for i in range(0, len(rows), BATCH):
        session.execute(insert(Attempt), list(rows[i : i + BATCH]))
