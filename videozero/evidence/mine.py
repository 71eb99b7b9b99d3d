"""Evidence mining of many videos into the store: the Python API the flows and `videozero mine` call.

A video is identified by the sha256 of its bytes. It is decoded once per sampling configuration (frames
and features are cached on disk under `cache_dir`), and mined once per sampling configuration: a video
that already has segments at that sampling key is skipped. A video's row and all its segments are
written in one transaction. Files that cannot be mined get `videos.status = 'error'` and a one-sentence
`videos.error`; rows stored before (and their segments) are never removed or downgraded.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store import Segment, Store, Video
from videozero.errors import VideozeroError
from videozero.evidence.features import FrameFeatures, cached_clip_and_features
from videozero.evidence.segments import EvidenceSegment, build_segments
from videozero.evidence.shots import detect_shots
from videozero.video.cache import VideoCache, file_sha256
from videozero.video.decode import MINING_SAMPLING, SamplingConfig, VideoClip

if TYPE_CHECKING:
    from videozero.progress import ProgressReport

# Mining samples at 2 fps (the method's rate) with room for 8.5 minutes before frames spread out.
DEFAULT_SAMPLING = MINING_SAMPLING
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp", ".ogv"}
)


@dataclass
class VideoResult:
    """What mining did with one input: `status` is mined, skipped (already mined) or error."""

    path: str
    status: str
    video_id: int | None = None
    duration_s: float | None = None
    shots: int = 0
    segments: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class MiningSummary:
    """Per-input results of one mining call, in input order."""

    sampling: str
    results: list[VideoResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def errors(self) -> list[VideoResult]:
        return [r for r in self.results if r.status == "error"]


def collect_videos(inputs: Iterable[str | Path]) -> tuple[list[Path], list[VideoResult]]:
    """Files to mine from files and folders (folders: video files by suffix, recursively), and an error
    result for every input that is missing or a folder without videos."""
    files: list[Path] = []
    problems: list[VideoResult] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and not p.is_dir()
            )
            if not found:
                problems.append(
                    VideoResult(
                        str(path),
                        "error",
                        error=f"{path} holds no video files: add videos or pass another folder.",
                    )
                )
            files += found
        elif path.exists() or path.is_symlink():
            files.append(path)
        else:
            problems.append(VideoResult(str(path), "error", error=f"{path} does not exist: check the path."))
    unique = list(dict.fromkeys(files))
    return unique, problems


def mine_videos(
    store: Store,
    paths: Sequence[str | Path],
    sampling: SamplingConfig | None = None,
    cache_dir: str | Path | None = None,
    progress: ProgressReport | None = None,
) -> MiningSummary:
    """Mine every video under `paths` into `store`; never raises for a bad file (see the results)."""
    sampling = sampling or DEFAULT_SAMPLING
    cache = VideoCache(cache_dir) if cache_dir is not None else None
    files, problems = collect_videos(paths)
    summary = MiningSummary(sampling=sampling.key)
    for problem in problems:
        record_error(store, Path(problem.path), None, problem.error or "")
        summary.results.append(problem)
    for i, f in enumerate(files):
        if progress is not None:
            progress("mining", i, len(files), f.name)
        summary.results.append(mine_video(store, f, sampling, cache))
    if progress is not None and files:
        progress("mining", len(files), len(files), "")
    return summary


def mine_video(store: Store, path: Path, sampling: SamplingConfig, cache: VideoCache | None) -> VideoResult:
    """Mine one file (or skip it if it is already mined at `sampling`); errors become a result."""
    started = time.perf_counter()
    digest: str | None = None
    try:
        digest = file_sha256(path)
        existing = _mined(store, digest, sampling.key)
        if existing is not None:
            video_id, duration, shots, segments = existing
            _update_path(store, video_id, path)
            return VideoResult(
                str(path), "skipped", video_id, duration, shots, segments, time.perf_counter() - started
            )
        clip, feats = cached_clip_and_features(path, digest, sampling, cache)
        if len(clip) == 0:
            raise VideozeroError(f"{path} holds no video frames: replace it with a complete video file.")
        segs = mine_clip(clip, feats)
        video_id, written = _write(store, path, digest, clip, sampling.key, segs)
    except (VideozeroError, OSError, MemoryError) as exc:
        message = str(exc) if isinstance(exc, VideozeroError) else _system_error(path, exc)
        record_error(store, path, digest, message)
        return VideoResult(str(path), "error", seconds=time.perf_counter() - started, error=message)
    status = "mined" if written else "skipped"
    shots = sum(s.level == "shot" for s in segs)
    return VideoResult(
        str(path), status, video_id, clip.duration_s, shots, len(segs), time.perf_counter() - started
    )


def _system_error(path: Path, exc: OSError | MemoryError) -> str:
    if isinstance(exc, MemoryError):
        return f"{path} needs more memory than is free: lower --max-frames or --fps."
    return f"{path} could not be read or cached ({exc.strerror or type(exc).__name__}): check the file and the disk."


def mine_clip(clip: VideoClip, feats: FrameFeatures) -> list[EvidenceSegment]:
    """Shots and scored evidence segments of one decoded video (no store, no cache)."""
    shots = detect_shots(clip.frames, clip.timestamps, clip.duration_s, feats.content)
    return build_segments(clip.frames, feats, shots, clip.duration_s)


def _mined(store: Store, digest: str, sampling_key: str) -> tuple[int, float | None, int, int] | None:
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


def _update_path(store: Store, video_id: int, path: Path) -> None:
    """Point a known video at `path` when the file it was mined from has gone (moved or renamed)."""
    with store.write() as session:
        video = session.get(Video, video_id)
        if video is not None and video.path != str(path) and not Path(video.path).exists():
            video.path = str(path)


def _write(
    store: Store, path: Path, digest: str, clip: VideoClip, sampling_key: str, segs: list[EvidenceSegment]
) -> tuple[int, bool]:
    """Store the video row and its segments in one transaction; (video id, whether anything was written)."""
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
                clip.duration_s,
                clip.native_fps,
                clip.frame_count,
            )
            video.width, video.height = clip.native_size
            video.size_bytes = path.stat().st_size
            video.status, video.error = "ok", None
            session.flush()
            ids: list[int] = []
            for seg in segs:
                row = Segment(
                    video_id=video.id,
                    sampling=sampling_key,
                    level=seg.level,
                    start_s=seg.start_s,
                    end_s=seg.end_s,
                    saliency=seg.saliency,
                    saliency_parts=seg.parts,
                    labels=seg.labels,
                    parent_id=ids[seg.parent] if seg.parent is not None else None,
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


def _has_segments(session: Session, video_id: int, sampling_key: str) -> bool:
    stmt = select(Segment.id).where(Segment.video_id == video_id, Segment.sampling == sampling_key).limit(1)
    return session.scalar(stmt) is not None


def record_error(store: Store, path: Path, digest: str | None, message: str) -> None:
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
    session: Session, video_id: int, sampling: SamplingConfig | str | None = None, level: str | None = None
) -> list[Segment]:
    """A video's stored segments, most salient first, optionally of one sampling key and one level."""
    stmt = select(Segment).where(Segment.video_id == video_id)
    if sampling is not None:
        stmt = stmt.where(Segment.sampling == (sampling if isinstance(sampling, str) else sampling.key))
    if level is not None:
        stmt = stmt.where(Segment.level == level)
    return list(session.scalars(stmt.order_by(Segment.saliency.desc(), Segment.id)))


def load_evidence(
    video: Video, sampling: SamplingConfig | None = None, cache_dir: str | Path | None = None
) -> tuple[VideoClip, FrameFeatures]:
    """A stored video's sampled frames (true timestamps) and frame features, from the cache when
    mining already computed them; raises VideozeroError if the file is gone and nothing is cached."""
    sampling = sampling or DEFAULT_SAMPLING
    if video.content_hash is None:
        raise VideozeroError(f"{video.path} was never read successfully: mine it again once it is readable.")
    cache = VideoCache(cache_dir) if cache_dir is not None else None
    return cached_clip_and_features(video.path, video.content_hash, sampling, cache)
