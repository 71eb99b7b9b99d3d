"""A run's bookkeeping shared by every stage: its store, ids, stage records and lease."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from store import Store, StoreError, connection_lost, default_url, open_store
from store.queries import run_id
from store.runs import (
    RunLockedError,
    claim_run,
    discard_empty_run,
    ensure_round,
    heartbeat,
    release_run,
    rounds_done,
    run_config_values,
    set_stage,
    stage_status,
)
from videozero.errors import VideozeroError
from videozero.faults import crash_point
from videozero.memory import process_resources, release_freed_memory
from videozero.run_config import RunConfig, stored_run_config

__all__ = [
    "Lease",
    "is_bad_input",
    "open_run_store",
    "record_resources",
    "round_id_of",
    "rounds_done",
    "run_config_of",
    "run_id_of",
    "stage_record",
    "store_went_away",
]


def record_resources(store: Store, run_id: int, round_index: int) -> dict[str, float]:
    """Store what the process holds after round `round_index` (memory, open files, threads) with the
    round, after releasing freed memory: a leak shows as a column that rises round after round."""
    release_freed_memory()
    held = process_resources()
    round_id = ensure_round(store, run_id, round_index)
    with store.write() as s:
        set_stage(s, round_id, "resources", "done", **held)
    return held


def store_went_away(exc: object) -> bool:
    """Whether `exc` says the store's server went away (a PostgreSQL restart): the stage is worth retrying
    once it is back (a stage resumes from what it committed)."""
    return connection_lost(exc)


def is_bad_input(exc: object) -> bool:
    """Whether `exc` reports bad input or a refused store (one sentence; trying again says the same)."""
    return isinstance(exc, VideozeroError | StoreError)


def open_run_store(config: RunConfig) -> Store:
    """The run's store (created and migrated if needed), one per URL in this process: every stage
    reuses it instead of opening a new connection pool (callers may `dispose()` it; its engine then
    reconnects on the next use)."""
    return store_at(config.db, config.workdir_path)


def store_at(db: str | None, workdir: Path) -> Store:
    """The store at URL `db`, else the SQLite file of the work directory (as `open_run_store`)."""
    return _store(db or default_url(workdir))


@functools.cache
def _store(url: str) -> Store:
    return open_store(url)


def run_id_of(store: Store, name: str) -> int:
    """The id of the run called `name` (a StoreError naming the runs that exist if there is none)."""
    with store.session() as s:
        return run_id(s, name)


def run_config_of(store: Store, run_id: int) -> RunConfig | None:
    """The configuration the run was started with (None when it cannot be read back)."""
    return stored_run_config(run_config_values(store, run_id))


def round_id_of(store: Store, run_id: int, round_index: int) -> int:
    return ensure_round(store, run_id, round_index)


@contextmanager
def stage_record(store: Store, round_id: int, name: str) -> Iterator[list[dict[str, Any]] | None]:
    """Run a stage body unless it is done (then yield None); record 'running', then 'done' with its
    seconds, or 'failed' if it raises. The body may add details (and a `status` such as 'skipped') by
    appending one dict to the yielded list."""
    with store.session() as s:
        if stage_status(s, round_id, name) == "done":
            yield None
            return
    with store.write() as s:
        set_stage(s, round_id, name, "running")
    crash_point(f"{name}:start")
    started = time.perf_counter()
    box: list[dict[str, Any]] = []
    try:
        yield box
        crash_point(f"{name}:end")  # the body's work is stored, the stage not yet marked done
    except BaseException:
        with store.write() as s:
            set_stage(s, round_id, name, "failed", seconds=round(time.perf_counter() - started, 2))
        raise
    with store.write() as s:
        details = box[0] if box else {}
        set_stage(
            s,
            round_id,
            name,
            details.pop("status", "done"),
            seconds=round(time.perf_counter() - started, 2),
            **details,
        )


class Lease:
    """The run's lease, renewed by a background thread while the run is driven."""

    def __init__(self, store: Store, config: RunConfig, every: float = 15.0) -> None:
        self.store, self.every = store, every
        self.run_id = claim_run(store, config.run_name, config.model_dump(mode="json"))
        self._stop = threading.Event()
        self.lost: str | None = None
        self._thread = threading.Thread(target=self._beat, daemon=True, name="videozero-lease")
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                heartbeat(self.store, self.run_id)
            except RunLockedError as exc:
                self.lost = str(exc)
                return
            except Exception:
                continue

    def check(self) -> None:
        """Raise if another process took the run over (checked between stages)."""
        if self.lost:
            raise VideozeroError(self.lost)

    def release(self, status: str) -> None:
        """Give the lease up with the run's status; a failed run that holds nothing yet (its inputs could
        not be mined) is removed, so failed first attempts leave no rows behind."""
        self._stop.set()
        self._thread.join(timeout=5)
        release_run(self.store, self.run_id, status)
        if status == "failed":
            discard_empty_run(self.store, self.run_id)
