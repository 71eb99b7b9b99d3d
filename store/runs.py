"""Runs and their lease: one process at a time advances a run; a killed process's lease expires.

The lease is a row-level claim (`runs.owner`, `runs.heartbeat_at`): a process claims a run inside
a write transaction, renews the heartbeat while it works, and releases it when done. A claim held by
another live owner (heartbeat newer than the lease timeout) is refused with a clear error; a stale one
(the owner was killed) is taken over, which is what makes `--run-name X` resume a killed run.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from store.engine import Store
from store.errors import StoreError
from store.tables import Checkpoint, Question, Round, Run, RunVideo, utcnow

LEASE_TIMEOUT = timedelta(seconds=90)


class RunLockedError(StoreError):
    """Another live process is driving this run."""


def this_owner() -> str:
    """The owner string of this process: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str) -> bool:
    """False only when `owner` is a process of this host that no longer exists (a killed run's lease
    is then taken over at once); owners on other hosts count as alive until their lease times out."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        _refuse_if_driven(run, owner, now, lease_timeout)
        run.owner, run.heartbeat_at, run.status, run.finished_at = owner, now, "running", None
        return run.id


def _refuse_if_driven(run: Run, owner: str, now: datetime, lease_timeout: timedelta) -> None:
    """Raise RunLockedError when another live owner renewed the run's lease within `lease_timeout`."""
    if not run.owner or run.owner == owner or not owner_alive(run.owner):
        return
    beat = _aware(run.heartbeat_at)
    if beat is not None and now - beat < lease_timeout:
        raise RunLockedError(
            f"Run '{run.name}' is being driven by {run.owner} (last heartbeat {(now - beat).total_seconds():.0f} s "
            f"ago): wait for it to finish, stop it, or pick another --run-name."
        )


def check_claimable(
    store: Store, name: str, owner: str | None = None, lease_timeout: timedelta = LEASE_TIMEOUT
) -> None:
    """Raise RunLockedError now if another live owner drives run `name` (claims nothing)."""
    with store.session() as s:
        run = s.scalars(select(Run).where(Run.name == name)).one_or_none()
        if run is not None:
            _refuse_if_driven(run, owner or this_owner(), utcnow(), lease_timeout)


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


def discard_empty_run(store: Store, run_id: int, owner: str | None = None) -> bool:
    """Delete the run (and its round rows) if it holds nothing yet: no videos attached, no questions, no
    checkpoints. A first attempt that failed on its inputs leaves no row behind; True if it was deleted."""
    owner = owner or this_owner()
    with store.write() as s:
        run = s.get(Run, run_id)
        if run is None or (run.owner not in (None, owner)):
            return False
        for table in (RunVideo, Question, Checkpoint):
            if s.scalar(select(table.id).where(table.run_id == run_id).limit(1)) is not None:
                return False
        s.execute(delete(Round).where(Round.run_id == run_id))
        s.delete(run)
    return True


def run_by_name(session: Session, name: str) -> Run | None:
    """The run called `name`, if any."""
    return session.scalars(select(Run).where(Run.name == name)).one_or_none()


# --- a run's videos and rounds ---------------------------------------------------------------------------


def heldout_split(
    hashes: list[str], fraction: float, minimum: int = 1, eligible: list[str] | None = None
) -> set[str]:
    """Which videos (by content hash) are held out: a stable choice by hash order among `eligible`
    (default: all), at least `minimum` when there are two videos or more, so that training always
    keeps one.

    >>> sorted(heldout_split(["c", "a", "b", "d"], 0.25))
    ['a']
    >>> heldout_split(["a"], 0.5), sorted(heldout_split(["a", "b"], 0.0, minimum=1))
    (set(), ['a'])
    >>> sorted(heldout_split(["c", "a", "b", "d"], 0.5, eligible=["d", "c", "b"]))
    ['b', 'c']
    """
    if len(hashes) < 2:
        return set()
    n = min(len(hashes) - 1, max(minimum, round(fraction * len(hashes))))
    pool = sorted(hashes if eligible is None else [h for h in hashes if h in set(eligible)])
    return set(pool[:n])


def attach_videos(
    store: Store,
    run_id: int,
    video_ids: list[int],
    heldout_fraction: float = 0.25,
    min_heldout: int = 1,
    eligible: set[int] | None = None,
    heldout: Collection[int] = (),
    fixed: Mapping[int, str] | None = None,
) -> dict[int, str]:
    """Make mined videos part of a run with a train/heldout split by video; videos already attached keep
    their split (a resumed or extended run never moves a video between splits). Held-out videos are
    drawn from `eligible` (default: all), e.g. those long enough to carry questions; the videos in
    `heldout` are held out whatever the fraction (a fixed evaluation set), those in `fixed` get the split
    it names (`warmup`, `validation`). Returns video -> split."""
    from store.tables import RunVideo, Video

    with store.write() as s:
        existing = {
            v: sp
            for v, sp in s.execute(select(RunVideo.video_id, RunVideo.split).where(RunVideo.run_id == run_id))
        }
        for v, split in {**(fixed or {}), **dict.fromkeys(heldout, "heldout")}.items():
            if v not in existing:
                s.add(RunVideo(run_id=run_id, video_id=v, split=split))
                existing[v] = split
        new = [v for v in dict.fromkeys(video_ids) if v not in existing]
        if new:
            hashes = {
                v: h or str(v)
                for v, h in s.execute(select(Video.id, Video.content_hash).where(Video.id.in_(new)))
            }
            have_heldout = "heldout" in existing.values()
            held = (
                set()
                if have_heldout and len(new) < 2
                else heldout_split(
                    list(hashes.values()),
                    heldout_fraction,
                    0 if have_heldout else min_heldout,
                    None if eligible is None else [h for v, h in hashes.items() if v in eligible],
                )
            )
            for v in new:
                split = "heldout" if hashes.get(v) in held else "train"
                s.add(RunVideo(run_id=run_id, video_id=v, split=split))
                existing[v] = split
    return existing


def run_video_ids(session: Session, run_id: int, split: str | None = None) -> list[int]:
    """The run's video ids (of one split), in the order of their content hashes: the same order whichever
    order the videos were mined in (Ray workers mine them concurrently), so proposals are too."""
    from store.tables import RunVideo, Video

    stmt = (
        select(RunVideo.video_id)
        .join(Video, Video.id == RunVideo.video_id)
        .where(RunVideo.run_id == run_id)
        .order_by(Video.content_hash, RunVideo.video_id)
    )
    if split is not None:
        stmt = stmt.where(RunVideo.split == split)
    return list(session.scalars(stmt))


def training_video_ids(store: Store, run_id: int) -> list[int]:
    """The videos a run's warm-ups learn from: its training videos and its warm-up scenes (never its
    held-out or validation ones)."""
    with store.session() as s:
        return run_video_ids(s, run_id, "train") + run_video_ids(s, run_id, "warmup")


def ensure_round(store: Store, run_id: int, round_index: int) -> int:
    """The id of round `round_index` of the run, created if absent."""
    from store.tables import Round

    with store.write() as s:
        found = s.scalars(
            select(Round.id).where(Round.run_id == run_id, Round.round_index == round_index)
        ).first()
        if found is not None:
            return int(found)
        row = Round(run_id=run_id, round_index=round_index, stages={})
        s.add(row)
        s.flush()
        return row.id


def round_indices(store: Store, run_id: int) -> list[int]:
    """The indices of the run's rounds started so far, in order."""
    from store.tables import Round

    with store.session() as s:
        return list(
            s.scalars(select(Round.round_index).where(Round.run_id == run_id).order_by(Round.round_index))
        )


def stage_status(session: Session, round_id: int, stage: str) -> str:
    """'pending', 'running', 'done', 'failed' or 'skipped' for one stage of a round.

    `rounds.stages` maps a stage to {"status": ..., and details such as "seconds"}.
    """
    from store.tables import Round

    row = session.get(Round, round_id)
    value = ((row.stages if row else None) or {}).get(stage, {})
    return str(value if isinstance(value, str) else value.get("status", "pending"))


def set_stage(session: Session, round_id: int, stage: str, status: str, **details: Any) -> None:
    """Record a stage's status and details (seconds, counts) in `rounds.stages`, inside the caller's
    write transaction so that a stage's outputs and its 'done' land together."""
    from store.tables import STAGE_STATUSES, Round

    if status not in STAGE_STATUSES:
        raise StoreError(f"unknown stage status {status!r}: use one of {', '.join(STAGE_STATUSES)}.")
    row = session.get(Round, round_id)
    if row is None:
        raise StoreError(f"round {round_id} is not in the store.")
    stages = dict(row.stages or {})
    old = stages.get(stage, {})
    stages[stage] = {**(old if isinstance(old, dict) else {}), **details, "status": status}
    row.stages = stages


def rounds_done(store: Store, run_id: int) -> int:
    """How many rounds of the run finished their last stage (the curriculum)."""
    from store.tables import Round

    with store.session() as s:
        rows = s.execute(select(Round.id).where(Round.run_id == run_id)).all()
        return sum(stage_status(s, r.id, "curriculum") == "done" for r in rows)


def round_curriculum(store: Store, run_id: int, round_index: int) -> dict[str, Any] | None:
    """The curriculum state stored by round `round_index` of the run, if that round stored one."""
    from store.tables import Round

    with store.session() as s:
        return s.scalar(
            select(Round.curriculum).where(Round.run_id == run_id, Round.round_index == round_index)
        )


def finish_round(store: Store, round_id: int, curriculum: dict[str, Any]) -> None:
    """Store the next round's curriculum and mark the round finished, in one transaction."""
    from store.tables import Round

    with store.write() as s:
        row = s.get(Round, round_id)
        row.curriculum = curriculum
        row.finished_at = row.finished_at or utcnow()
        set_stage(s, round_id, "curriculum", "done")


def stored_curriculum(store: Store, round_id: int) -> dict[str, Any] | None:
    """The curriculum a finished round stored (None while its curriculum stage is not done)."""
    from store.tables import Round

    with store.session() as s:
        if stage_status(s, round_id, "curriculum") != "done":
            return None
        return dict(s.get(Round, round_id).curriculum or {})


def rich_videos(
    store: Store, video_ids: list[int], min_segments: int = 4, min_seconds: float = 8.0
) -> set[int]:
    """Videos with enough mined evidence to carry held-out questions of several families."""
    from sqlalchemy import func

    from store.tables import Segment, Video

    with store.session() as s:
        counts = dict(
            s.execute(
                select(Segment.video_id, func.count(Segment.id))
                .where(Segment.video_id.in_(video_ids), Segment.level != "frame")
                .group_by(Segment.video_id)
            ).all()
        )
        durations = dict(s.execute(select(Video.id, Video.duration_s).where(Video.id.in_(video_ids))).all())
    return {
        v for v in video_ids if counts.get(v, 0) >= min_segments and (durations.get(v) or 0) >= min_seconds
    }


def run_config_values(store: Store, run_id: int) -> dict[str, Any]:
    """The settings a run was started with, as stored ({} when the run has none)."""
    with store.session() as s:
        row = s.get(Run, run_id)
        return dict(row.config or {}) if row is not None else {}


def run_names(session: Session) -> list[str]:
    """The names of the runs in the store, oldest first."""
    return list(session.scalars(select(Run.name).order_by(Run.id)))


def round_row(session: Session, run_id: int, round_index: int):
    """Round `round_index` of the run (its stages and curriculum), or None."""
    from store.tables import Round

    return session.scalar(select(Round).where(Round.run_id == run_id, Round.round_index == round_index))


def run_video_rows(session: Session, run_id: int) -> list[tuple[int, str, str, float | None]]:
    """(video id, split, path, duration) of the run's videos but its warm-up scenes, in id order."""
    from store.tables import RunVideo, Video

    return [
        tuple(r)
        for r in session.execute(
            select(RunVideo.video_id, RunVideo.split, Video.path, Video.duration_s)
            .join(Video, Video.id == RunVideo.video_id)
            .where(RunVideo.run_id == run_id, RunVideo.split != "warmup")
            .order_by(RunVideo.video_id)
        )
    ]
