"""Errors the store raises for users: one sentence naming the culprit and what to do (`StoreError`), and
the database driver's own errors (`DatabaseError`, SQLAlchemy's base class), which the CLI words."""

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import SQLAlchemyError as DatabaseError

__all__ = ["DatabaseError", "StoreError", "connection_lost"]


class StoreError(Exception):
    """A store could not be opened, migrated or queried because of the user's input or environment."""


def connection_lost(exc: object) -> bool:
    """Whether `exc` says the database server went away (restarted, unreachable) rather than refused the
    request: trying the same work again once it is back can succeed."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError | InterfaceError):
        text = str(exc).lower()
        return any(
            s in text
            for s in ("connection", "server closed", "terminating", "shutting down", "could not receive",
                      "the database system is starting up", "consuming input failed")
        )  # fmt: skip
    return False
