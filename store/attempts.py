"""A run's stored questions as evaluation reads them, and the checkpoints' stored answers (attempts)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.tables import Attempt, Question, Video


def question_rows(
    session: Session,
    run_id: int | None,
    split: str | None = None,
    round_id: int | None = None,
    status: str | None = None,
    limit: int | None = None,
    ids: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """Questions of a run (oldest first) filtered by split, round and status (or those of `ids`), each
    with its video's path and duration, as plain values."""
    stmt = select(Question, Video.path, Video.duration_s).join(Video, Video.id == Question.video_id)
    stmt = stmt.order_by(Question.id)
    if run_id is not None:
        stmt = stmt.where(Question.run_id == run_id)
    if ids is not None:
        stmt = stmt.where(Question.id.in_(list(ids)))
    if split is not None:
        stmt = stmt.where(Question.split == split)
    if round_id is not None:
        stmt = stmt.where(Question.round_id == round_id)
    if status is not None:
        stmt = stmt.where(Question.status == status)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [
        {
            "id": q.id,
            "family": q.family,
            "text": q.text,
            "options": q.options,
            "answer": q.answer,
            "evidence": q.evidence,
            "spec": q.spec,
            "video_path": path,
            "duration": duration,
        }
        for q, path, duration in session.execute(stmt)
    ]


def answered_pairs(session: Session, checkpoint_id: int, question_ids: Sequence[int]) -> set[tuple[int, str]]:
    """(question id, mode) pairs the checkpoint already answered (its greedy sample 0)."""
    found: set[tuple[int, str]] = set()
    for i in range(0, len(question_ids), 500):
        rows = session.execute(
            select(Attempt.question_id, Attempt.mode).where(
                Attempt.checkpoint_id == checkpoint_id,
                Attempt.sample_index == 0,
                Attempt.question_id.in_(question_ids[i : i + 500]),
            )
        )
        found.update((int(q), str(m)) for q, m in rows)
    return found


def greedy_answers(
    session: Session, checkpoint_id: int, question_ids: Sequence[int], mode: str = "full"
) -> Iterator[tuple[int, str | None, Any, bool | None]]:
    """(question id, parsed answer, parsed spans, format ok) of the checkpoint's stored greedy answers."""
    for i in range(0, len(question_ids), 500):
        yield from session.execute(
            select(Attempt.question_id, Attempt.parsed_answer, Attempt.parsed_spans, Attempt.format_ok).where(
                Attempt.checkpoint_id == checkpoint_id,
                Attempt.mode == mode,
                Attempt.sample_index == 0,
                Attempt.question_id.in_(question_ids[i : i + 500]),
            )
        )


def attempt_turns(session: Session, checkpoint_id: int, question_ids: Sequence[int], mode: str) -> list[Any]:
    """The stored zoom records (`Attempt.turns`) of the checkpoint's greedy answers in `mode`."""
    out: list[Any] = []
    for i in range(0, len(question_ids), 500):
        out.extend(
            session.scalars(
                select(Attempt.turns).where(
                    Attempt.checkpoint_id == checkpoint_id,
                    Attempt.mode == mode,
                    Attempt.sample_index == 0,
                    Attempt.question_id.in_(question_ids[i : i + 500]),
                )
            )
        )
    return out


def mode_results(
    session: Session, run_id: int, round_id: int, checkpoint_id: int | None = None
) -> list[tuple[int, str, bool | None]]:
    """(question id, mode, correct) of every stored attempt at the round's accepted questions (of one
    checkpoint, or of all that answered them)."""
    stmt = (
        select(Attempt.question_id, Attempt.mode, Attempt.correct)
        .join(Question, Question.id == Attempt.question_id)
        .where(Question.run_id == run_id, Question.round_id == round_id, Question.status == "accepted")
    )
    if checkpoint_id is not None:
        stmt = stmt.where(Attempt.checkpoint_id == checkpoint_id)
    return [tuple(r) for r in session.execute(stmt)]
