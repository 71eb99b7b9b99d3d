"""Mined videos and their evidence segments: what mining writes, once per content hash and sampling."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.engine import Store
from store.tables import Segment, Video


def mined_video(store: Store, digest: str, sampling_key: str) -> tuple[int, float | None, int, int] | None:
    """(video id, duration, shots, segments) of content `digest` already mined at `sampling_key`."""
    with store.session() as session:
        video = session.scalar(select(Video).where(Video.content_hash == digest))
        if video is None or video.status != "ok":
            return None
        levels = session.scalars(
            select(Segment.level).where(Segment.video_id == video.id, Segment.sampling == sampling_key)
        ).all()
        if not levels:
            return None
        return video.id, video.duration_s, sum(level == "shot" for level in levels), len(levels)


def point_video_at(store: Store, video_id: int, path: Path) -> None:
    """Point a known video at `path` when the file it was mined from has gone (moved or renamed)."""
    with store.write() as session:
        video = session.get(Video, video_id)
        if video is not None and video.path != str(path) and not Path(video.path).exists():
            video.path = str(path)


def _has_segments(session: Session, video_id: int, sampling_key: str) -> bool:
    stmt = select(Segment.id).where(Segment.video_id == video_id, Segment.sampling == sampling_key).limit(1)
    return session.scalar(stmt) is not None


def write_mined_video(
    store: Store,
    path: Path,
    digest: str,
    facts: Mapping[str, Any],
    sampling_key: str,
    segments: Sequence[Mapping[str, Any]],
) -> tuple[int, bool]:
    """Store the video row (`facts`: duration_s, fps, frame_count, width, height) and its segments in one
    transaction; each segment is a mapping of level, start_s, end_s, saliency, parts, labels and `parent`
    (the index of its parent among `segments`, or None). Returns (video id, whether anything was written):
    content another process mined meanwhile is not written twice."""
    try:
        with store.write() as session:
            video = session.scalar(select(Video).where(Video.content_hash == digest))
            if video is None:
                video = Video(path=str(path), content_hash=digest)
                session.add(video)
            elif video.status == "ok" and _has_segments(session, video.id, sampling_key):
                return video.id, False  # mined meanwhile by another process
            video.path = str(path)
            video.duration_s, video.fps, video.frame_count = (
                facts["duration_s"],
                facts["fps"],
                facts["frame_count"],
            )
            video.width, video.height = facts["width"], facts["height"]
            video.size_bytes = path.stat().st_size
            video.status, video.error = "ok", None
            session.flush()
            ids: list[int] = []
            for seg in segments:
                row = Segment(
                    video_id=video.id,
                    sampling=sampling_key,
                    level=seg["level"],
                    start_s=seg["start_s"],
                    end_s=seg["end_s"],
                    saliency=seg["saliency"],
                    saliency_parts=seg["parts"],
                    labels=seg["labels"],
                    parent_id=ids[seg["parent"]] if seg["parent"] is not None else None,
                )
                session.add(row)
                session.flush()
                ids.append(row.id)
            return video.id, True
    except IntegrityError:  # another process stored the same content first
        with store.session() as session:
            video = session.scalar(select(Video).where(Video.content_hash == digest))
            if video is None:
                raise
            return video.id, False


def record_mining_error(store: Store, path: Path, digest: str | None, message: str) -> None:
    """Record why `path` could not be mined, without touching what earlier runs stored: a video already
    mined keeps `status = 'ok'` (the message still lands in `error`)."""
    with store.write() as session:
        if digest is not None:
            video = session.scalar(select(Video).where(Video.content_hash == digest))
        else:
            stmt = select(Video).where(Video.path == str(path), Video.content_hash.is_(None)).limit(1)
            video = session.scalar(stmt)
        if video is None:
            video = Video(path=str(path), content_hash=digest, status="error")
            session.add(video)
        if video.status != "ok":
            video.status = "error"
        video.error = message
        try:
            video.size_bytes = path.stat().st_size if path.is_file() else None
        except OSError:
            video.size_bytes = None


def video_segments(
    session: Session, video_id: int, sampling_key: str | None = None, level: str | None = None
) -> list[Segment]:
    """A video's stored segments, most salient first, optionally of one sampling key and one level."""
    stmt = select(Segment).where(Segment.video_id == video_id)
    if sampling_key is not None:
        stmt = stmt.where(Segment.sampling == sampling_key)
    if level is not None:
        stmt = stmt.where(Segment.level == level)
    return list(session.scalars(stmt.order_by(Segment.saliency.desc(), Segment.id)))


def videos_tag(store: Store, video_ids: Sequence[int]) -> str:
    """A short digest of the videos' contents: what a warm-up trained on them is cached under."""
    with store.session() as s:
        hashes = sorted(
            h or str(v)
            for v, h in s.execute(select(Video.id, Video.content_hash).where(Video.id.in_(video_ids)))
        )
    return hashlib.sha1("\n".join(hashes).encode()).hexdigest()[:8]
