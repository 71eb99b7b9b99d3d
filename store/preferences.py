"""Preference pairs: what they are built from (a round's accepted questions, their well-formed solver
rollouts and the mined events of their videos), their one writer, and the reads of `qa show` and the
preference exports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from store.queries import QUESTION_COLUMNS, QuestionFilter, filtered, joined_question
from store.tables import PREFERENCE_FACTORS, Attempt, Preference, Question, Segment, Video


def round_pair_inputs(session: Session, run_id: int, round_id: int) -> list[dict[str, Any]]:
    """The round's accepted training questions with what pairs are built from: label fields, the video's
    duration, `rollouts` (well-formed `full` attempts: id, answer, spans) and `events` (mined event spans)."""
    rows = session.execute(
        select(
            Question.id,
            Question.video_id,
            Question.writer,
            Question.options,
            Question.spec,
            Question.answer,
            Question.evidence,
            Question.consensus_answer,
            Question.consensus_evidence,
            Video.duration_s,
        )
        .join(Video, Video.id == Question.video_id)
        .where(Question.run_id == run_id, Question.round_id == round_id)
        .where(Question.status == "accepted", Question.split == "train")
        .order_by(Question.id)
    ).all()
    ids = [r.id for r in rows]
    rollouts: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        for a in session.execute(
            select(Attempt.id, Attempt.question_id, Attempt.parsed_answer, Attempt.parsed_spans)
            .where(Attempt.question_id.in_(ids), Attempt.mode == "full", Attempt.format_ok.is_(True))
            .order_by(Attempt.id)
        ):
            rollouts[a.question_id].append({"id": a.id, "answer": a.parsed_answer, "spans": a.parsed_spans})
    videos = sorted({r.video_id for r in rows})
    events: dict[int, set[tuple[float, float]]] = {v: set() for v in videos}
    if videos:
        for vid, s, e in session.execute(
            select(Segment.video_id, Segment.start_s, Segment.end_s).where(
                Segment.video_id.in_(videos), Segment.level == "event"
            )
        ):
            events[vid].add((float(s), float(e)))
    return [
        dict(r._mapping) | {"rollouts": rollouts[r.id], "events": sorted(events[r.video_id])} for r in rows
    ]


def replace_round_preferences(
    session: Session, run_id: int, round_id: int, pairs: Iterable[Mapping[str, Any]]
) -> int:
    """Store the round's pairs in place of any stored before (one transaction: a rerun writes nothing
    twice); returns how many were stored."""
    session.execute(delete(Preference).where(Preference.run_id == run_id, Preference.round_id == round_id))
    rows = [Preference(run_id=run_id, round_id=round_id, **dict(p)) for p in pairs]
    session.add_all(rows)
    session.flush()
    return len(rows)


PAIR_COLUMNS = (
    Preference.id.label("pair_id"),
    Preference.factor,
    Preference.source,
    Preference.attempt_id,
    Preference.chosen,
    Preference.rejected,
    Preference.rejected_answer,
    Preference.rejected_evidence,
)


def question_preferences(session: Session, question_id: int) -> list[dict[str, Any]]:
    """A question's stored pairs, by factor then id."""
    order = {f: i for i, f in enumerate(PREFERENCE_FACTORS)}
    rows = [
        dict(r._mapping)
        for r in session.execute(
            select(*PAIR_COLUMNS).where(Preference.question_id == question_id).order_by(Preference.id)
        )
    ]
    return sorted(rows, key=lambda r: (order.get(r["factor"], 9), r["pair_id"]))


def list_preferences(
    session: Session, flt: QuestionFilter, factors: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Pairs of the questions matching `flt` (optionally of some factors), each with its question's columns
    (those of `queries.list_questions`), by question then pair id."""
    stmt = joined_question(select(*QUESTION_COLUMNS, *PAIR_COLUMNS)).join(
        Preference, Preference.question_id == Question.id
    )
    stmt = filtered(session, stmt, flt)
    if factors:
        stmt = stmt.where(Preference.factor.in_(list(factors)))
    return [dict(r._mapping) for r in session.execute(stmt.order_by(Question.id, Preference.id))]
