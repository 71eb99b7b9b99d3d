"""The questioner's rows: fixed held-out and validation questions, a round's candidates and their
verdicts, and what the curriculum and the solver read back. One function per job."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.tables import Question


def fixed_question_count(session: Session, run_id: int, split: str) -> int:
    """How many questions of `split` (heldout or validation) the run has."""
    return int(
        session.scalar(
            select(func.count(Question.id)).where(Question.run_id == run_id, Question.split == split)
        )
        or 0
    )


def live_training_questions(session: Session, run_id: int) -> list[tuple[int, int, str, str, Any, Any]]:
    """(id, video id, family, text, options, evidence) of the run's training questions not rejected:
    what a new proposal is de-duplicated against."""
    rows = session.execute(
        select(
            Question.id,
            Question.video_id,
            Question.family,
            Question.text,
            Question.options,
            Question.evidence,
        ).where(Question.run_id == run_id, Question.split == "train", Question.reject_reason.is_(None))
    )
    return [tuple(r) for r in rows]


def link_duplicates(session: Session, links: Mapping[int, int]) -> None:
    """Point each question id at the question it duplicates."""
    for qid, target in links.items():
        session.get(Question, qid).dedup_of = target


def pending_questions(session: Session, round_id: int) -> list[Question]:
    """The round's candidates still to verify, oldest first."""
    return list(
        session.scalars(
            select(Question)
            .where(Question.round_id == round_id, Question.status == "candidate")
            .order_by(Question.id)
        )
    )


def still_pending(session: Session, question_ids: Sequence[int], lock: bool = False) -> list[Question]:
    """Those of `question_ids` that are still unverified candidates, oldest first; with `lock`, their
    rows are locked for this transaction (PostgreSQL), so two workers never record one verdict twice."""
    stmt = select(Question).where(Question.id.in_(list(question_ids)), Question.status == "candidate")
    if lock:
        stmt = stmt.with_for_update()
    return list(session.scalars(stmt.order_by(Question.id)))


def candidates_left(session: Session, round_id: int) -> bool:
    """Whether any of the round's candidates is still unverified."""
    stmt = select(Question.id).where(Question.round_id == round_id, Question.status == "candidate").limit(1)
    return session.scalar(stmt) is not None


def record_verdict(session: Session, question_id: int, fields: Mapping[str, Any]) -> None:
    """Write a verified candidate's verdict (status, reason, rewards, consensus, figures)."""
    row = session.get(Question, question_id)
    for name, value in fields.items():
        setattr(row, name, value)


def status_counts(session: Session, round_id: int) -> list[tuple[str, str, str | None]]:
    """(family, status, reject reason) of every question of the round."""
    stmt = select(Question.family, Question.status, Question.reject_reason).where(
        Question.round_id == round_id
    )
    return [tuple(r) for r in session.execute(stmt)]


def verified_figures(
    session: Session, round_id: int
) -> list[tuple[str, dict | None, float | None, float | None]]:
    """(family, verification figures, agreement, r_learn) of the round's verified questions."""
    stmt = select(Question.family, Question.verification, Question.agreement, Question.r_learn).where(
        Question.round_id == round_id, Question.verification.is_not(None)
    )
    return [tuple(r) for r in session.execute(stmt)]


def accepted_training_questions(session: Session, run_id: int, round_id: int) -> Sequence[Question]:
    """The round's accepted training questions, oldest first."""
    return session.scalars(
        select(Question)
        .where(Question.run_id == run_id, Question.round_id == round_id, Question.status == "accepted")
        .where(Question.split == "train")
        .order_by(Question.id)
    ).all()


def round_outcomes(session: Session, round_id: int) -> list[Any]:
    """(family, status, writer, reject_reason, r_q, answer, consensus_answer) of the round's training
    questions (named columns)."""
    return session.execute(
        select(
            Question.family,
            Question.status,
            Question.writer,
            Question.reject_reason,
            Question.r_q,
            Question.answer,
            Question.consensus_answer,
        ).where(Question.round_id == round_id, Question.split == "train")
    ).all()


def video_outcomes(session: Session, run_id: int) -> list[Any]:
    """(video_id, status, reject_reason) of every question of the run (named columns)."""
    return session.execute(
        select(Question.video_id, Question.status, Question.reject_reason).where(Question.run_id == run_id)
    ).all()
