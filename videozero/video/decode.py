"""Decode a video into sampled frames that keep their true (container) timestamps.

Sampling targets a frame rate on the time axis, not on frame indices, so variable-frame-rate videos
get frames at the times they are shown, and every frame carries the time the decoder reports for it.
The container's header is read first (PyAV, no decoding) so that files which are not videos, hold no
video stream or are too large are refused with a clear reason before decord opens them once, already
at the working resolution.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from videozero.errors import VideozeroError

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mkv", ".mov", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp", ".ogv"}
)
"""File name endings read as videos when a folder is searched (mining, benchmark videos)."""

# Largest frame decoded (8K UHD): bigger frames cost gigabytes per second of video to decode.
MAX_PIXELS = 7680 * 4320


class SamplingConfig(BaseModel):
    """How frames are sampled from a video: target rate, a cap on their number, working resolution."""

    fps: float = Field(2.0, gt=0, le=120, description="target frames per second of video time")
    max_frames: int = Field(64, ge=1, le=4096, description="at most this many frames, spread evenly")
    short_side: int = Field(224, ge=16, le=2160, description="frames resized so the short side is this")

    @property
    def key(self) -> str:
        """A short stable name of this configuration, used as a cache key."""
        return f"fps{self.fps:g}-max{self.max_frames}-s{self.short_side}"


# How evidence mining samples videos unless told otherwise (2 fps as the method's evaluation protocol).
MINING_SAMPLING = SamplingConfig(fps=2.0, max_frames=1024, short_side=224)


@dataclass
class VideoClip:
    """Sampled frames of one video and when each is shown.

    `frames` is uint8 [T, H, W, 3] RGB; `timestamps` float64 [T] seconds from the start of the video
    (the decoder's presentation time of each frame); `indices` the frames' indices in the container;
    `frame_count` how many frames the container holds.
    """

    path: str
    frames: np.ndarray
    timestamps: np.ndarray
    indices: np.ndarray
    duration_s: float
    native_fps: float
    native_size: tuple[int, int]
    frame_count: int = 0

    def __len__(self) -> int:
        return int(self.frames.shape[0])


@dataclass(frozen=True)
class VideoHeader:
    """What the container says about its first video stream, read without decoding."""

    width: int
    height: int
    codec: str


def working_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) scaled so the short side is `short_side` (never upscaled), both even.

    >>> working_size(1280, 720, 224)
    (398, 224)
    >>> working_size(100, 80, 224)
    (100, 80)
    """
    scale = min(1.0, short_side / min(width, height))
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def sample_indices(starts: np.ndarray, fps: float, max_frames: int) -> np.ndarray:
    """Indices of the frames nearest to an even time grid at `fps`, at most `max_frames` of them.

    `starts` are the presentation times of all frames (sorted). If the grid has more points than
    `max_frames`, the grid is spread evenly over the whole video instead. Decoders report times as
    float32, so the grid's length tolerates 1e-3 of a grid period plus float32 rounding: sampling at
    the native rate keeps every frame, the last one included.

    >>> sample_indices(np.array([0.0, 0.1, 0.2, 0.5, 0.6, 0.9]), fps=2.0, max_frames=10).tolist()
    [0, 3]
    >>> sample_indices(np.arange(100) / 10, fps=10.0, max_frames=4).tolist()
    [0, 33, 66, 99]
    >>> len(sample_indices((np.arange(273) / 30).astype(np.float32), fps=30.0, max_frames=1000))
    273
    """
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64)
    t0, t1 = float(starts[0]), float(starts[-1])
    tolerance = 1e-3 + 4 * float(np.finfo(np.float32).eps) * max(abs(t0), abs(t1)) * fps
    n = int(np.floor((t1 - t0) * fps + tolerance)) + 1
    grid = np.linspace(t0, t1, max_frames) if n > max_frames else t0 + np.arange(n) / fps
    pos = np.clip(np.searchsorted(starts, grid), 1, len(starts) - 1)
    left, right = starts[pos - 1], starts[pos]
    nearest = np.where(np.abs(grid - left) <= np.abs(right - grid), pos - 1, pos)
    if len(starts) == 1:
        nearest = np.zeros_like(nearest)
    return np.unique(nearest)


def check_readable(path: Path) -> None:
    """Raise VideozeroError unless `path` is a non-empty file this process may read."""
    if not path.exists():
        raise VideozeroError(f"{path} does not exist: check the path.")
    if not path.is_file():
        raise VideozeroError(f"{path} is not a regular file: pass a video file or a folder of videos.")
    if not os.access(path, os.R_OK):
        raise VideozeroError(f"{path} cannot be read (permission denied): make it readable (chmod +r).")
    if path.stat().st_size == 0:
        raise VideozeroError(f"{path} is empty (0 bytes): replace it with a complete video file.")


def read_header(path: str | Path) -> VideoHeader:
    """The first video stream's size and codec from the container header; refuses non-videos and
    frames larger than MAX_PIXELS."""
    import av

    path = Path(path)
    check_readable(path)
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            streams = container.streams.video
            if not streams:
                raise VideozeroError(
                    f"{path} holds no video frames (zero-length, or no video track): pass a video with frames."
                )
            ctx = streams[0].codec_context
            width, height, codec = int(ctx.width or 0), int(ctx.height or 0), str(ctx.name or "?")
    except VideozeroError:
        raise
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise VideozeroError(
            f"{path} is not a readable video (not a video format, or truncated or corrupt: "
            f"{_reason(exc)}): replace it with a complete video file."
        ) from None
    if width <= 0 or height <= 0:
        raise VideozeroError(f"{path} has a video stream without a frame size: it is corrupt; replace it.")
    if width * height > MAX_PIXELS:
        raise VideozeroError(
            f"{path} is {width}x{height}, larger than the {MAX_PIXELS / 1e6:.0f}-megapixel limit: "
            "downscale it first (e.g. ffmpeg -i IN -vf scale=-2:1080 OUT)."
        )
    return VideoHeader(width=width, height=height, codec=codec)


def _reason(exc: BaseException) -> str:
    """The first informative line of a decoder error, short enough for a one-sentence message."""
    strerror = getattr(exc, "strerror", None)
    if isinstance(strerror, str) and strerror:
        return strerror.rstrip(".")
    for line in str(exc).splitlines():
        line = re.sub(r"^\[[\d:]+\] \S+:\d+: (Error: )?", "", line.strip())
        if line and not line.startswith("Stack trace"):
            return line.rstrip(".")[:160]
    return type(exc).__name__


def decode_video(
    path: str | Path,
    sampling: SamplingConfig | None = None,
    on_chunk: Callable[[np.ndarray], object] | None = None,
    chunk: int = 64,
) -> VideoClip:
    """Decode `path` at `sampling`; raises VideozeroError with the reason if it cannot be read.

    With `on_chunk`, frames are decoded `chunk` at a time and each block is handed over as soon as it
    is ready (so a consumer can work on it while the next one is decoded).
    """
    import decord

    sampling = sampling or SamplingConfig()
    path = Path(path)
    header = read_header(path)
    decord.logging.set_level(decord.logging.QUIET)
    w, h = working_size(header.width, header.height, sampling.short_side)
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), width=w, height=h, num_threads=1)
        count = len(reader)
        if count == 0:
            raise VideozeroError(f"{path} holds no video frames: replace it with a complete video file.")
        native_fps = float(reader.get_avg_fps())
        times = reader.get_frame_timestamp(np.arange(count))
        if not np.all(np.isfinite(times)) or np.any(np.diff(times[:, 0]) < 0):
            raise VideozeroError(f"{path} has broken frame timestamps: remux it (ffmpeg -i IN -c copy OUT).")
        indices = sample_indices(times[:, 0], sampling.fps, sampling.max_frames)
        if on_chunk is None:
            frames = reader.get_batch(indices.tolist()).asnumpy()
        else:
            frames = np.empty(0, np.uint8)
            for i in range(0, len(indices), chunk):
                block = reader.get_batch(indices[i : i + chunk].tolist()).asnumpy()
                if i == 0:
                    frames = np.empty((len(indices), *block.shape[1:]), np.uint8)
                frames[i : i + len(block)] = block
                on_chunk(block)
        del reader
    except VideozeroError:
        raise
    except (decord.DECORDError, RuntimeError, IndexError, ValueError) as exc:
        raise VideozeroError(
            f"{path} could not be decoded (truncated or corrupt: {_reason(exc)}): replace it with a "
            "complete video file."
        ) from None
    except MemoryError:
        raise VideozeroError(
            f"{path} needs more memory than is free at {sampling.key}: lower --max-frames."
        ) from None
    return VideoClip(
        path=str(path),
        frames=frames,
        timestamps=times[indices, 0].astype(np.float64),
        indices=indices.astype(np.int64),
        duration_s=float(times[-1, 1]),
        native_fps=native_fps,
        native_size=(header.width, header.height),
        frame_count=count,
    )
