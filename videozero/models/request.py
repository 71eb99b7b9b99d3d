"""One request type for every model: a question with an optional video and optional still images."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from videozero.video.inputs import VideoInput


@dataclass(frozen=True)
class Request:
    """A prompt: the question text, an optional video, optional labelled still images, an optional system line.

    `video=None` is the blind (question-only) mode; masked modes use `VideoInput.drop` / `.blank`.
    """

    question: str
    video: VideoInput | None = None
    images: tuple[tuple[str, np.ndarray], ...] = field(default_factory=tuple)
    system: str | None = None

    def without_video(self) -> Request:
        return replace(self, video=None)
