"""The reads of the QA browser (`videozero browse`): runs with their rounds and tasks, one question with
every rollout's spans and the video's mined segments, an attempt's raw output, and a video's file.

Read-only: nothing here writes. Ids come from the URL as integers and every value is bound as a parameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session

from store.engine import sqlite_file
from store.queries import QUESTION_COLUMNS, joined_question
from store.tables import Attempt, Checkpoint, Metric, Question, Round, Run, Segment, TaskRun, Video

# The mined levels a timeline shows (frame-level segments are too many to draw).
TIMELINE_LEVELS = ("shot", "event")


@dataclass(frozen=True)
class VideoFile:
    """A video as the browser needs it: where its file is, its identity and length."""

    id: int
    path: str
    content_hash: str | None
    duration_s: float | None


def runs_overview(session: Session) -> list[dict[str, Any]]:
    """Every run, newest first: name, status, times, rounds and questions counted."""
    rounds = (
        select(Round.run_id, func.count(Round.id).label("n")).group_by(Round.run_id).subquery("round_counts")
    )
    questions = (
        select(Question.run_id, func.count(Question.id).label("n"))
        .group_by(Question.run_id)
        .subquery("question_counts")
    )
    stmt = (
        select(
            Run.id,
            Run.name,
            Run.status,
            Run.created_at,
            Run.finished_at,
            func.coalesce(rounds.c.n, 0).label("rounds"),
            func.coalesce(questions.c.n, 0).label("questions"),
        )
        .outerjoin(rounds, rounds.c.run_id == Run.id)
        .outerjoin(questions, questions.c.run_id == Run.id)
        .order_by(Run.id.desc())
    )
    return [dict(r._mapping) for r in session.execute(stmt)]


def run_row(session: Session, run_id: int) -> dict[str, Any] | None:
    """A run's columns (config included), or None."""
    run = session.get(Run, run_id)
    if run is None:
        return None
    return {
        "id": run.id,
        "name": run.name,
        "status": run.status,
        "config": run.config or {},
        "created_at": run.created_at,
        "finished_at": run.finished_at,
    }


def round_rows(session: Session, run_id: int) -> list[dict[str, Any]]:
    """The run's rounds in order: index, per-stage records, curriculum state, start and end."""
    stmt = select(Round).where(Round.run_id == run_id).order_by(Round.round_index)
    return [
        {
            "id": r.id,
            "round_index": r.round_index,
            "stages": r.stages or {},
            "curriculum": r.curriculum or {},
            "started_at": r.started_at,
            "finished_at": r.finished_at,
        }
        for r in session.scalars(stmt)
    ]


def task_summary(session: Session, run_id: int) -> list[dict[str, Any]]:
    """Per (stage, executor, node): how many tasks ran there, their total and longest seconds."""
    stmt = (
        select(
            TaskRun.stage,
            TaskRun.executor,
            TaskRun.node,
            func.count(TaskRun.id).label("tasks"),
            func.count(func.distinct(TaskRun.pid)).label("processes"),
            func.sum(TaskRun.seconds).label("seconds"),
            func.max(TaskRun.seconds).label("longest"),
        )
        .where(TaskRun.run_id == run_id)
        .group_by(TaskRun.stage, TaskRun.executor, TaskRun.node)
        .order_by(func.min(TaskRun.id), TaskRun.node)
    )
    return [dict(r._mapping) for r in session.execute(stmt)]


def question_attempts(session: Session, question_id: int) -> list[dict[str, Any]]:
    """Every attempt on a question, without its raw output (fetched on demand): who answered (the
    checkpoint's id, stage, round and path), in which mode, what it answered and where it looked."""
    stmt = (
        select(
            Attempt.id,
            Attempt.checkpoint_id,
            Checkpoint.stage.label("checkpoint_stage"),
            Round.round_index.label("checkpoint_round"),
            Checkpoint.path.label("checkpoint_path"),
            Attempt.mode,
            Attempt.sample_index,
            Attempt.parsed_answer,
            Attempt.parsed_spans,
            Attempt.format_ok,
            Attempt.correct,
            Attempt.iou,
            Attempt.reward,
        )
        .join(Checkpoint, Checkpoint.id == Attempt.checkpoint_id)
        .outerjoin(Round, Round.id == Checkpoint.round_id)
        .where(Attempt.question_id == question_id)
        .order_by(Attempt.checkpoint_id, Attempt.mode, Attempt.sample_index, Attempt.id)
    )
    return [dict(r._mapping) for r in session.execute(stmt)]


def attempt_output(session: Session, attempt_id: int) -> dict[str, Any] | None:
    """An attempt's raw output and turns (the part of a question page loaded on demand), or None."""
    row = session.execute(
        select(Attempt.id, Attempt.question_id, Attempt.raw_output, Attempt.turns).where(
            Attempt.id == attempt_id
        )
    ).first()
    return dict(row._mapping) if row else None


def video_segments(session: Session, video_id: int) -> list[dict[str, Any]]:
    """The shots and events mined from a video (every sampling), in time order."""
    stmt = (
        select(Segment.id, Segment.level, Segment.start_s, Segment.end_s, Segment.saliency, Segment.labels)
        .where(Segment.video_id == video_id, Segment.level.in_(TIMELINE_LEVELS))
        .order_by(Segment.level, Segment.start_s, Segment.id)
    )
    return [dict(r._mapping) for r in session.execute(stmt)]


def video_file(session: Session, video_id: int) -> VideoFile | None:
    """Where a video's file is, or None for an unknown id."""
    row = session.execute(
        select(Video.id, Video.path, Video.content_hash, Video.duration_s).where(Video.id == video_id)
    ).first()
    return VideoFile(*row) if row else None


def run_workdirs(session: Session) -> list[str]:
    """The work directories the store's runs were configured with (where their frame caches are)."""
    out = []
    for config in session.scalars(select(Run.config)):
        workdir = (config or {}).get("workdir") if isinstance(config, dict) else None
        if isinstance(workdir, str) and workdir:
            out.append(workdir)
    return out


def filter_choices(session: Session) -> dict[str, list[Any]]:
    """The values the question filters can take in this store: run names and families."""
    return {
        "runs": list(session.scalars(select(Run.name).order_by(Run.id.desc()))),
        "families": list(session.scalars(select(Question.family).distinct().order_by(Question.family))),
    }


def question_row(session: Session, question_id: int) -> dict[str, Any] | None:
    """One question's columns (those `qa list` shows, plus its video's id), or None."""
    row = session.execute(
        joined_question(select(*QUESTION_COLUMNS, Question.video_id, Question.created_at)).where(
            Question.id == question_id
        )
    ).first()
    return dict(row._mapping) if row else None


def sqlite_folder(url: URL) -> Path | None:
    """The folder holding a SQLite store's file (the work directory, in the default layout), else None."""
    path = sqlite_file(url)
    return path.absolute().parent if path is not None else None


def round_question_counts(session: Session, run_id: int) -> list[tuple[int | None, str, str, int]]:
    """(round index, family, status, questions) of a run's questions: one grouped scan."""
    stmt = (
        select(Round.round_index, Question.family, Question.status, func.count(Question.id))
        .select_from(Question)
        .outerjoin(Round, Round.id == Question.round_id)
        .where(Question.run_id == run_id)
        .group_by(Round.round_index, Question.family, Question.status)
    )
    return [(r, f, st, int(n)) for r, f, st, n in session.execute(stmt)]


def report_version(session: Session, run_id: int) -> tuple[Any, ...]:
    """What changes when a run's report would: its newest metric, checkpoint and attempt ids and its
    metric count (each read from an index)."""
    return (
        session.scalar(select(func.max(Metric.id)).where(Metric.run_id == run_id)),
        session.scalar(select(func.count(Metric.id)).where(Metric.run_id == run_id)),
        session.scalar(select(func.max(Checkpoint.id)).where(Checkpoint.run_id == run_id)),
        session.scalar(select(func.max(Attempt.id))),
    )
