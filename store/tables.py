"""The QA store's tables: every video, segment, question, rollout, checkpoint and metric of a run.

SQLAlchemy 2 typed ORM. Column names are the ones users see in plain SQL (see docs/store.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Allowed values of the enumerated text columns (kept as plain strings so plain SQL stays readable).
RUN_STATUSES = ("running", "finished", "failed", "stopped")
STAGE_STATUSES = ("pending", "running", "done", "failed", "skipped")
VIDEO_STATUSES = ("pending", "ok", "error")
SEGMENT_LEVELS = ("shot", "event", "frame")
WRITERS = ("template", "model")
QUESTION_STATUSES = ("candidate", "accepted", "rejected")
SPLITS = ("train", "heldout", "validation")
ATTEMPT_MODES = ("full", "blind", "masked", "key_only", "random_span")  # the probe modes
CHECKPOINT_ROLES = ("solver", "questioner")
PREFERENCE_FACTORS = ("grounding", "answer", "both")  # what a preference pair's rejected response perturbs


def utcnow() -> datetime:
    """Timezone-aware now, the one clock every row uses."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base carrying the constraint naming convention Alembic relies on."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Run(Base):
    """One self-evolution run: a name, its full configuration, and its lifecycle."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="running")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The process currently driving the run ("host:pid") and when it last said so: a lease that stops
    # two processes from advancing the same run at once.
    owner: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    rounds: Mapped[list[Round]] = relationship(back_populates="run", order_by="Round.round_index")


class Round(Base):
    """One iteration of a run: per-stage status and the curriculum state it ran with."""

    __tablename__ = "rounds"
    __table_args__ = (UniqueConstraint("run_id", "round_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    round_index: Mapped[int] = mapped_column(Integer)
    stages: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    curriculum: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    run: Mapped[Run] = relationship(back_populates="rounds")


class Video(Base):
    """A video file, identified by content hash; `status`/`error` say whether it could be mined."""

    __tablename__ = "videos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, index=True)
    content_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    duration_s: Mapped[float | None] = mapped_column(Float)
    fps: Mapped[float | None] = mapped_column(Float)
    frame_count: Mapped[int | None] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class RunVideo(Base):
    """Which videos a run uses and for what (the split is by video): `train` (the rounds ask about them),
    `heldout` (never trained on; the held-out questions), `validation` (never trained on; the questions
    recipes and checkpoints are chosen on) or `warmup` (only the warm-up's template targets)."""

    __tablename__ = "run_videos"
    __table_args__ = (UniqueConstraint("run_id", "video_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    split: Mapped[str] = mapped_column(String(16), default="train")


class Segment(Base):
    """A candidate evidence span mined from a video, with its saliency score and the parts of it."""

    __tablename__ = "segments"
    __table_args__ = (Index("ix_segments_video_level", "video_id", "level", "sampling"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    sampling: Mapped[str] = mapped_column(String(64), default="")
    level: Mapped[str] = mapped_column(String(8))
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    saliency: Mapped[float] = mapped_column(Float, default=0.0)
    saliency_parts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    labels: Mapped[list[Any]] = mapped_column(JSON, default=list)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))


class Checkpoint(Base):
    """A model a run used or produced: `base`, `warmup` or a round's GRPO output, per role."""

    __tablename__ = "checkpoints"
    __table_args__ = (Index("ix_checkpoints_run_round_role", "run_id", "round_id", "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(16), default="grpo")
    path: Mapped[str] = mapped_column(Text)
    base_model: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Question(Base):
    """A candidate question anchored to evidence spans, its verification rewards and its verdict."""

    __tablename__ = "questions"
    __table_args__ = (
        Index("ix_questions_run_round_family_status", "run_id", "round_id", "family", "status"),
        Index("ix_questions_run_status_id", "run_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"))
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"), index=True)
    split: Mapped[str] = mapped_column(String(16), default="train")
    family: Mapped[str] = mapped_column(String(32))
    level: Mapped[int] = mapped_column(Integer, default=0)
    writer: Mapped[str] = mapped_column(String(16), default="template")
    text: Mapped[str] = mapped_column(Text)
    options: Mapped[list[Any] | None] = mapped_column(JSON)
    answer: Mapped[str] = mapped_column(Text)
    evidence: Mapped[list[Any]] = mapped_column(JSON, default=list)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    reject_reason: Mapped[str | None] = mapped_column(String(64))
    r_learn: Mapped[float | None] = mapped_column(Float)
    r_dep: Mapped[float | None] = mapped_column(Float)
    r_evid: Mapped[float | None] = mapped_column(Float)
    # r_Q = r_learn + r_dep + r_evid - repetition (the questioner's reward) and the figures behind it
    r_q: Mapped[float | None] = mapped_column(Float)
    verification: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    agreement: Mapped[float | None] = mapped_column(Float)
    consensus_answer: Mapped[str | None] = mapped_column(Text)
    consensus_evidence: Mapped[list[Any] | None] = mapped_column(JSON)
    dedup_of: Mapped[int | None] = mapped_column(ForeignKey("questions.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    attempts: Mapped[list[Attempt]] = relationship(back_populates="question", order_by="Attempt.id")


class Attempt(Base):
    """One solver rollout on a question under one input mode, parsed and scored."""

    __tablename__ = "attempts"
    __table_args__ = (
        UniqueConstraint("question_id", "checkpoint_id", "mode", "sample_index"),
        Index("ix_attempts_checkpoint_mode", "checkpoint_id", "mode"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"))
    checkpoint_id: Mapped[int] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(16))
    sample_index: Mapped[int] = mapped_column(Integer, default=0)
    raw_output: Mapped[str] = mapped_column(Text, default="")
    parsed_answer: Mapped[str | None] = mapped_column(Text)
    parsed_spans: Mapped[list[Any] | None] = mapped_column(JSON)
    format_ok: Mapped[bool] = mapped_column(Boolean, default=False)
    correct: Mapped[bool | None] = mapped_column(Boolean)
    iou: Mapped[float | None] = mapped_column(Float)
    reward: Mapped[float | None] = mapped_column(Float)
    # a zoom tool answer's turns (what was said, the span asked for, the frames shown or the error), or a
    # coarse-to-fine answer's record (the coarse answer, its confidence, whether and where it zoomed)
    turns: Mapped[list[Any] | dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    question: Mapped[Question] = relationship(back_populates="attempts")


class Metric(Base):
    """A named number a run measured: per round, per checkpoint, per split (train, heldout, a benchmark)."""

    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_run_round_name", "run_id", "round_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"))
    checkpoint_id: Mapped[int | None] = mapped_column(ForeignKey("checkpoints.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
    split: Mapped[str] = mapped_column(String(64), default="heldout")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TaskRun(Base):
    """One finished task of a fanned-out stage (a video mined, a chunk of questions verified or
    answered): where it ran and how long it took. Written by the stage that fanned it out."""

    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_run_stage", "run_id", "stage"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(32))
    item: Mapped[str] = mapped_column(Text)
    executor: Mapped[str] = mapped_column(String(16))
    node: Mapped[str] = mapped_column(String(64))
    pid: Mapped[int] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Preference(Base):
    """A factorized preference pair of a question (D2VLM): the training label's evidence and answer as
    the chosen response, a rejected one that perturbs the `factor` (grounding, answer or both), and where
    the rejected one came from (`source`: a solver rollout, or shift, shrink, stretch, event, distractor)."""

    __tablename__ = "preferences"
    __table_args__ = (
        Index("ix_preferences_run_round_factor", "run_id", "round_id", "factor"),
        UniqueConstraint("question_id", "rejected"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"))
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    factor: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(32))
    # the rollout a rejected response was taken from, if it was
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempts.id", ondelete="SET NULL"))
    chosen: Mapped[str] = mapped_column(Text)
    rejected: Mapped[str] = mapped_column(Text)
    rejected_answer: Mapped[str] = mapped_column(Text)
    rejected_evidence: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
