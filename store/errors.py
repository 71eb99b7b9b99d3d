"""Errors the store raises for users: one sentence naming the culprit and what to do (`StoreError`), and
the database driver's own errors (`DatabaseError`, SQLAlchemy's base class), which the CLI words."""

from sqlalchemy.exc import SQLAlchemyError as DatabaseError

__all__ = ["DatabaseError", "StoreError"]


class StoreError(Exception):
    """A store could not be opened, migrated or queried because of the user's input or environment."""
