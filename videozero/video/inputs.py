"""A video as a model is shown it: sampled frames with their true times, which may be dropped or blanked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from videozero.errors import VideozeroError

if TYPE_CHECKING:
    from videozero.video.decode import VideoClip


@dataclass(frozen=True)
class VideoInput:
    """Frames (uint8 [T, H, W, 3]) and the true time of each in seconds; frames may be dropped or blanked."""

    frames: np.ndarray
    timestamps: np.ndarray

    def __post_init__(self) -> None:
        frames = np.asarray(self.frames)
        times = np.asarray(self.timestamps, dtype=np.float64)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise VideozeroError(
                f"video frames must be uint8 [T, H, W, 3], got {frames.dtype} {list(frames.shape)}."
            )
        if len(frames) == 0 or len(frames) != len(times):
            raise VideozeroError(
                f"a video needs at least one frame and one timestamp per frame, got {len(frames)} "
                f"frames and {len(times)} timestamps."
            )
        if not np.all(np.isfinite(times)) or np.any(np.diff(times) < 0):
            raise VideozeroError("video timestamps must be finite and non-decreasing.")
        object.__setattr__(self, "frames", frames)
        object.__setattr__(self, "timestamps", times)

    @classmethod
    def from_clip(cls, clip: VideoClip) -> VideoInput:
        return cls(clip.frames, clip.timestamps)

    def __len__(self) -> int:
        return len(self.frames)

    def drop(self, remove: np.ndarray) -> VideoInput:
        """The clip without the frames where `remove` is true; the others keep their true times."""
        keep = ~np.asarray(remove, dtype=bool)
        return VideoInput(self.frames[keep], self.timestamps[keep])

    def blank(self, remove: np.ndarray, value: int = 0) -> VideoInput:
        """The clip with the frames where `remove` is true replaced by a flat `value` frame."""
        frames = self.frames.copy()
        frames[np.asarray(remove, dtype=bool)] = value
        return VideoInput(frames, self.timestamps)
