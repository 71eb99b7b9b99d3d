"""The queries users run against the QA store: filtered question lists, one question in full, and stats.

Every filter value is bound as a parameter (never pasted into SQL) and text filters escape LIKE
wildcards, so quotes, `;`, `%` or SQL fragments match literally.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from store.errors import StoreError
from store.runs import run_by_name
from store.tables import (
    QUESTION_STATUSES,
    SPLITS,
    WRITERS,
    Attempt,
    Checkpoint,
    Question,
    Round,
    Run,
    Video,
)


@dataclass
class QuestionFilter:
    """Which questions to select; every field optional, all given fields must hold."""

    run: str | None = None
    round: int | None = None
    family: str | None = None
    status: str | None = None
    writer: str | None = None
    split: str | None = None
    level_min: int | None = None
    level_max: int | None = None
    video: str | None = None
    text: str | None = None

    def validate(self) -> None:
        """Reject values that can never match, with a sentence saying what would."""
        for name, value, allowed in (
            ("status", self.status, QUESTION_STATUSES),
            ("writer", self.writer, WRITERS),
            ("split", self.split, SPLITS),
        ):
            if value is not None and value not in allowed:
                raise StoreError(f"Unknown {name} '{value}': use one of {', '.join(allowed)}.")
        if self.level_min is not None and self.level_max is not None and self.level_min > self.level_max:
            raise StoreError(
                f"The difficulty range is empty (min {self.level_min} > max {self.level_max}): swap them."
            )


QUESTION_COLUMNS = (
    Question.id,
    Run.name.label("run"),
    Round.round_index.label("round"),
    Question.split,
    Question.family,
    Question.level,
    Question.writer,
    Question.status,
    Question.reject_reason,
    Question.agreement,
    Question.r_learn,
    Question.r_dep,
    Question.r_evid,
    Question.r_q,
    Question.dedup_of,
    Video.path.label("video"),
    Video.duration_s,
    Question.text,
    Question.options,
    Question.answer,
    Question.evidence,
    Question.consensus_answer,
    Question.consensus_evidence,
    Question.spec,
    Question.verification,
)


def run_id(session: Session, name: str) -> int:
    """The id of the run called `name`, or a StoreError naming the runs that exist."""
    found = run_by_name(session, name)
    if found is None:
        names = session.scalars(select(Run.name).order_by(Run.id.desc()).limit(5)).all()
        hint = f"runs in this store: {', '.join(names)}" if names else "this store holds no runs yet"
        raise StoreError(f"No run named '{name}' ({hint}).")
    return int(found.id)


def filtered(session: Session, stmt: Select[Any], flt: QuestionFilter) -> Select[Any]:
    """`stmt` narrowed to the questions matching `flt` (checked first: a filter that can never match says so)."""
    flt.validate()
    if flt.run is not None:
        stmt = stmt.where(Question.run_id == run_id(session, flt.run))
    if flt.round is not None:
        stmt = stmt.where(Round.round_index == flt.round)
    if flt.family is not None:
        stmt = stmt.where(Question.family == flt.family)
    if flt.status is not None:
        stmt = stmt.where(Question.status == flt.status)
    if flt.writer is not None:
        stmt = stmt.where(Question.writer == flt.writer)
    if flt.split is not None:
        stmt = stmt.where(Question.split == flt.split)
    if flt.level_min is not None:
        stmt = stmt.where(Question.level >= flt.level_min)
    if flt.level_max is not None:
        stmt = stmt.where(Question.level <= flt.level_max)
    if flt.video is not None:
        stmt = stmt.where(Video.path.icontains(flt.video, autoescape=True))
    if flt.text is not None:
        stmt = stmt.where(Question.text.icontains(flt.text, autoescape=True))
    return stmt


def joined_question(stmt: Select[Any]) -> Select[Any]:
    """`stmt` over questions joined to their run, round (if any) and video, the columns filters use."""
    return (
        stmt.join(Run, Run.id == Question.run_id)
        .outerjoin(Round, Round.id == Question.round_id)
        .join(Video, Video.id == Question.video_id)
    )


def list_questions(
    session: Session, flt: QuestionFilter, limit: int | None = 50, offset: int = 0
) -> list[dict[str, Any]]:
    """Questions matching `flt`, newest first, as plain dicts (the columns of QUESTION_COLUMNS)."""
    stmt = filtered(session, joined_question(select(*QUESTION_COLUMNS)), flt).order_by(Question.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    if offset:
        stmt = stmt.offset(offset)
    return [dict(row._mapping) for row in session.execute(stmt)]


def count_questions(session: Session, flt: QuestionFilter) -> int:
    """How many questions match `flt`. Joins only the tables the filter reads (a question's run and video
    always exist: foreign keys), which makes the unfiltered count of a large store several times faster."""
    stmt = select(func.count(Question.id)).select_from(Question)
    if flt.round is not None:
        stmt = stmt.outerjoin(Round, Round.id == Question.round_id)
    if flt.video is not None:
        stmt = stmt.join(Video, Video.id == Question.video_id)
    return session.scalar(filtered(session, stmt, flt)) or 0


def question_detail(session: Session, question_id: int) -> dict[str, Any]:
    """One question with its fields and its attempts summarised per (checkpoint, mode)."""
    row = session.execute(
        joined_question(select(*QUESTION_COLUMNS)).where(Question.id == question_id)
    ).first()
    if row is None:
        raise StoreError(f"No question with id {question_id}: `videozero qa list` shows the ids.")
    detail = dict(row._mapping)
    summary = session.execute(
        select(
            Checkpoint.id.label("checkpoint_id"),
            Checkpoint.stage,
            Checkpoint.path,
            Attempt.mode,
            func.count(Attempt.id).label("n"),
            func.avg(case((Attempt.format_ok.is_(True), 1.0), else_=0.0)).label("format_rate"),
            func.avg(case((Attempt.correct.is_(True), 1.0), (Attempt.correct.is_(False), 0.0))).label(
                "accuracy"
            ),
            func.avg(Attempt.iou).label("mean_iou"),
            func.avg(Attempt.reward).label("mean_reward"),
        )
        .join(Checkpoint, Checkpoint.id == Attempt.checkpoint_id)
        .where(Attempt.question_id == question_id)
        .group_by(Checkpoint.id, Checkpoint.stage, Checkpoint.path, Attempt.mode)
        .order_by(Checkpoint.id, Attempt.mode)
    )
    detail["attempt_summary"] = [dict(r._mapping) for r in summary]
    samples = session.execute(
        select(
            Attempt.checkpoint_id,
            Attempt.mode,
            Attempt.sample_index,
            Attempt.raw_output,
            Attempt.parsed_answer,
            Attempt.correct,
            Attempt.turns,
        )
        .where(Attempt.question_id == question_id, Attempt.sample_index == 0)
        .order_by(Attempt.id)
    )
    detail["sample_outputs"] = [dict(r._mapping) for r in samples]
    return detail


@dataclass
class QuestionStats:
    """Per (run, round, family): generated, accepted, rejection reasons and solver accuracy by mode."""

    run: str
    round: int | None
    family: str
    generated: int
    accepted: int
    rejected: int
    reject_reasons: dict[str, int]
    accuracy_by_mode: dict[str, float]
    attempts_by_mode: dict[str, int]

    @property
    def acceptance(self) -> float:
        return self.accepted / self.generated if self.generated else 0.0


def question_stats(session: Session, flt: QuestionFilter) -> list[QuestionStats]:
    """Aggregate counts per (run, round, family) over questions matching `flt`."""
    key_cols = (Run.name, Round.round_index, Question.family)
    counts = session.execute(
        filtered(
            session,
            joined_question(
                select(
                    *key_cols,
                    func.count(Question.id),
                    func.sum(case((Question.status == "accepted", 1), else_=0)),
                    func.sum(case((Question.status == "rejected", 1), else_=0)),
                )
            ),
            flt,
        ).group_by(*key_cols)
    ).all()
    reasons = session.execute(
        filtered(
            session,
            joined_question(select(*key_cols, Question.reject_reason, func.count(Question.id))),
            flt,
        )
        .where(Question.reject_reason.is_not(None))
        .group_by(*key_cols, Question.reject_reason)
    ).all()
    accuracy = session.execute(
        filtered(
            session,
            joined_question(
                select(
                    *key_cols,
                    Attempt.mode,
                    func.count(Attempt.id),
                    func.avg(case((Attempt.correct.is_(True), 1.0), (Attempt.correct.is_(False), 0.0))),
                ).select_from(Question)
            ).join(Attempt, Attempt.question_id == Question.id),
            flt,
        ).group_by(*key_cols, Attempt.mode)
    ).all()
    by_reason: dict[tuple[Any, ...], dict[str, int]] = defaultdict(dict)
    for run, rnd, family, reason, n in reasons:
        by_reason[(run, rnd, family)][reason] = n
    by_mode: dict[tuple[Any, ...], dict[str, tuple[int, float]]] = defaultdict(dict)
    for run, rnd, family, mode, n, acc in accuracy:
        by_mode[(run, rnd, family)][mode] = (n, float(acc or 0.0))
    out = []
    for run, rnd, family, generated, accepted, rejected in counts:
        key = (run, rnd, family)
        modes = by_mode.get(key, {})
        out.append(
            QuestionStats(
                run=run,
                round=rnd,
                family=family,
                generated=generated,
                accepted=int(accepted or 0),
                rejected=int(rejected or 0),
                reject_reasons=dict(sorted(by_reason.get(key, {}).items(), key=lambda kv: -kv[1])),
                accuracy_by_mode={m: acc for m, (_, acc) in sorted(modes.items())},
                attempts_by_mode={m: n for m, (n, _) in sorted(modes.items())},
            )
        )
    out.sort(key=lambda s: (s.run, -1 if s.round is None else s.round, s.family))
    return out
