"""Runs and their lease: one process at a time advances a run; a killed process's lease expires.

The lease is a row-level claim (`runs.owner`, `runs.heartbeat_at`): a process claims a run inside
a write transaction, renews the heartbeat while it works, and releases it when done. A claim held by
another live owner (heartbeat newer than the lease timeout) is refused with a clear error; a stale one
(the owner was killed) is taken over, which is what makes `--run-name X` resume a killed run.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.engine import Store
from store.errors import StoreError
from store.tables import Run, utcnow

LEASE_TIMEOUT = timedelta(seconds=90)


class RunLockedError(StoreError):
    """Another live process is driving this run."""


def this_owner() -> str:
    """The owner string of this process: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _aware(ts: datetime | None) -> datetime | None:
    if ts is not None and ts.tzinfo is None:  # SQLite returns naive datetimes
        return ts.replace(tzinfo=UTC)
    return ts


def claim_run(
    store: Store,
    name: str,
    config: dict[str, Any],
    owner: str | None = None,
    lease_timeout: timedelta = LEASE_TIMEOUT,
) -> int:
    """Create run `name` or resume it, claiming its lease for `owner`; return the run id.

    Raises RunLockedError when another owner renewed the lease within `lease_timeout`.
    """
    owner = owner or this_owner()
    now = utcnow()
    with store.write() as s:
        stmt = select(Run).where(Run.name == name)
        if store.url.get_backend_name() == "postgresql":
            stmt = stmt.with_for_update()
        run = s.scalars(stmt).one_or_none()
        if run is None:
            run = Run(name=name, config=config, status="running", owner=owner, heartbeat_at=now)
            s.add(run)
            s.flush()
            return run.id
        beat = _aware(run.heartbeat_at)
        if run.owner and run.owner != owner and beat is not None and now - beat < lease_timeout:
            age = (now - beat).total_seconds()
            raise RunLockedError(
                f"Run '{name}' is being driven by {run.owner} (last heartbeat {age:.0f} s ago): wait for it to "
                f"finish, stop it, or pick another --run-name."
            )
        run.owner, run.heartbeat_at, run.status, run.finished_at = owner, now, "running", None
        return run.id


def heartbeat(store: Store, run_id: int, owner: str | None = None) -> None:
    """Renew the lease; raises RunLockedError if another process has taken the run over."""
    owner = owner or this_owner()
    with store.write() as s:
        done = s.execute(
            update(Run).where(Run.id == run_id, Run.owner == owner).values(heartbeat_at=utcnow())
        ).rowcount
    if not done:
        raise RunLockedError(
            f"Run {run_id} was taken over by another process: this process stops driving it."
        )


def release_run(store: Store, run_id: int, status: str, owner: str | None = None) -> None:
    """Give the lease up and record how the run ended (finished, failed, stopped)."""
    owner = owner or this_owner()
    with store.write() as s:
        s.execute(
            update(Run)
            .where(Run.id == run_id, Run.owner == owner)
            .values(
                owner=None,
                heartbeat_at=None,
                status=status,
                finished_at=utcnow() if status == "finished" else None,
            )
        )


def run_by_name(session: Session, name: str) -> Run | None:
    """The run called `name`, if any."""
    return session.scalars(select(Run).where(Run.name == name)).one_or_none()
