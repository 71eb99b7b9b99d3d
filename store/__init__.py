"""The QA store: SQLAlchemy tables, opening and migrating a database, and the queries users run."""

from sqlalchemy.orm import Session

from store.engine import Store, default_url, display_url, open_store
from store.errors import DatabaseError, StoreError, connection_lost
from store.tables import (
    Attempt,
    Base,
    Checkpoint,
    Metric,
    Question,
    Round,
    Run,
    RunVideo,
    Segment,
    TaskRun,
    Video,
)

__all__ = [
    "Attempt",
    "Base",
    "Checkpoint",
    "DatabaseError",
    "Metric",
    "Question",
    "Round",
    "Run",
    "RunVideo",
    "Segment",
    "Session",
    "Store",
    "StoreError",
    "TaskRun",
    "Video",
    "connection_lost",
    "default_url",
    "display_url",
    "open_store",
]
