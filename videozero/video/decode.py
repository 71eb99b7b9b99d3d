"""Decode a video into sampled frames that keep their true (container) timestamps.

Sampling targets a frame rate on the time axis, not on frame indices, so variable-frame-rate videos
get frames at the times they are shown, and every frame carries the time the decoder reports for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

from videozero.errors import VideozeroError


class SamplingConfig(BaseModel):
    """How frames are sampled from a video: target rate, a cap on their number, working resolution."""

    fps: float = Field(2.0, gt=0, le=120, description="target frames per second of video time")
    max_frames: int = Field(64, ge=1, le=4096, description="at most this many frames, spread evenly")
    short_side: int = Field(224, ge=16, le=2160, description="frames resized so the short side is this")

    @property
    def key(self) -> str:
        """A short stable name of this configuration, used as a cache key."""
        return f"fps{self.fps:g}-max{self.max_frames}-s{self.short_side}"


@dataclass
class VideoClip:
    """Sampled frames of one video and when each is shown.

    `frames` is uint8 [T, H, W, 3] RGB; `timestamps` float64 [T] seconds from the start of the video
    (the decoder's presentation time of each frame); `indices` the frames' indices in the container.
    """

    path: str
    frames: np.ndarray
    timestamps: np.ndarray
    indices: np.ndarray
    duration_s: float
    native_fps: float
    native_size: tuple[int, int]

    def __len__(self) -> int:
        return int(self.frames.shape[0])


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
    `max_frames`, the grid is spread evenly over the whole video instead.

    >>> sample_indices(np.array([0.0, 0.1, 0.2, 0.5, 0.6, 0.9]), fps=2.0, max_frames=10).tolist()
    [0, 3]
    >>> sample_indices(np.arange(100) / 10, fps=10.0, max_frames=4).tolist()
    [0, 33, 66, 99]
    """
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64)
    t0, t1 = float(starts[0]), float(starts[-1])
    n = int(np.floor((t1 - t0) * fps + 1e-9)) + 1
    grid = np.linspace(t0, t1, max_frames) if n > max_frames else t0 + np.arange(n) / fps
    pos = np.clip(np.searchsorted(starts, grid), 1, len(starts) - 1)
    left, right = starts[pos - 1], starts[pos]
    nearest = np.where(np.abs(grid - left) <= np.abs(right - grid), pos - 1, pos)
    if len(starts) == 1:
        nearest = np.zeros_like(nearest)
    return np.unique(nearest)


def decode_video(path: str | Path, sampling: SamplingConfig | None = None) -> VideoClip:
    """Decode `path` at `sampling`; raises VideozeroError with the reason if it cannot be read."""
    import decord

    sampling = sampling or SamplingConfig()
    path = Path(path)
    if not path.is_file():
        raise VideozeroError(f"{path} is not a file.")
    try:
        probe = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        count = len(probe)
        if count == 0:
            raise VideozeroError(f"{path} holds no video frames.")
        height, width = probe[0].shape[:2]
        native_fps = float(probe.get_avg_fps())
        times = probe.get_frame_timestamp(np.arange(count))
        del probe
        w, h = working_size(width, height, sampling.short_side)
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), width=w, height=h, num_threads=1)
        indices = sample_indices(times[:, 0], sampling.fps, sampling.max_frames)
        frames = reader.get_batch(indices.tolist()).asnumpy()
    except VideozeroError:
        raise
    except (decord.DECORDError, RuntimeError, IndexError) as exc:
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise VideozeroError(f"{path} could not be decoded as a video ({reason}).") from None
    return VideoClip(
        path=str(path),
        frames=frames,
        timestamps=times[indices, 0].astype(np.float64),
        indices=indices.astype(np.int64),
        duration_s=float(times[-1, 1]),
        native_fps=native_fps,
        native_size=(int(width), int(height)),
    )
