"""Evidence mining of videos: which files to mine, the shots and scored segments of one decoded video,
and a mined video's frames and features read back from the cache. Writing into the store is the mine
stage's (`stages.mine.mine_videos`, which `videozero mine` and the flows call).

A video is identified by the sha256 of its bytes. It is decoded once per sampling configuration (frames
and features are cached on disk under `cache_dir`), and mined once per sampling configuration: a video
that already has segments at that sampling key is skipped. A video's row and all its segments are
written in one transaction. Files that cannot be mined get `videos.status = 'error'` and a one-sentence
`videos.error`; rows stored before (and their segments) are never removed or downgraded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from videozero.errors import VideozeroError
from videozero.evidence.features import FrameFeatures, cached_clip_and_features
from videozero.evidence.segments import EvidenceSegment, build_segments
from videozero.evidence.shots import detect_shots
from videozero.video.cache import VideoCache
from videozero.video.decode import MINING_SAMPLING, VIDEO_SUFFIXES, SamplingConfig, VideoClip

if TYPE_CHECKING:
    pass

# Mining samples at 2 fps (the method's rate) with room for 8.5 minutes before frames spread out.
DEFAULT_SAMPLING = MINING_SAMPLING


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
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
            if not found:
                problems.append(
                    VideoResult(
                        str(path),
                        "error",
                        error=f"{path} holds no video files: add videos or pass another folder.",
                    )
                )
            files += found
        elif path.is_file():
            files.append(path)
        elif path.exists() or path.is_symlink():  # a FIFO or a device would block the reader; a loop fails
            problems.append(
                VideoResult(
                    str(path),
                    "error",
                    error=f"{path} is not a regular file (a pipe, a device or a broken link): pass a video file.",
                )
            )
        else:
            problems.append(VideoResult(str(path), "error", error=f"{path} does not exist: check the path."))
    unique = list(dict.fromkeys(files))
    return unique, problems


def system_error(path: Path, exc: OSError | MemoryError) -> str:
    if isinstance(exc, MemoryError):
        return f"{path} needs more memory than is free: lower --max-frames or --fps."
    return f"{path} could not be read or cached ({exc.strerror or type(exc).__name__}): check the file and the disk."


def mine_clip(clip: VideoClip, feats: FrameFeatures) -> list[EvidenceSegment]:
    """Shots and scored evidence segments of one decoded video (no store, no cache)."""
    shots = detect_shots(clip.frames, clip.timestamps, clip.duration_s, feats.content)
    return build_segments(clip.frames, feats, shots, clip.duration_s)


def load_evidence(
    path: str,
    content_hash: str | None,
    sampling: SamplingConfig | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[VideoClip, FrameFeatures]:
    """A stored video's sampled frames (true timestamps) and frame features, from the cache when
    mining already computed them; raises VideozeroError if the file is gone and nothing is cached."""
    sampling = sampling or DEFAULT_SAMPLING
    if content_hash is None:
        raise VideozeroError(f"{path} was never read successfully: mine it again once it is readable.")
    cache = VideoCache(cache_dir) if cache_dir is not None else None
    return cached_clip_and_features(path, content_hash, sampling, cache)
