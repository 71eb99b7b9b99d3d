"""The QA store: SQLAlchemy tables, opening and migrating a database, and the queries users run."""

from store.engine import Store, default_url, display_url, open_store
from store.errors import StoreError
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
    Video,
)

__all__ = [
    "Attempt",
    "Base",
    "Checkpoint",
    "Metric",
    "Question",
    "Round",
    "Run",
    "RunVideo",
    "Segment",
    "Store",
    "StoreError",
    "Video",
    "default_url",
    "display_url",
    "open_store",
]
