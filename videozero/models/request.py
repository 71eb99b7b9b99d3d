"""One request type for every model: a question with an optional video and optional still images, and the
earlier turns of a multi-turn answer."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from videozero.video.inputs import VideoInput


@dataclass(frozen=True)
class ToolTurn:
    """One earlier exchange of a multi-turn answer (the zoom tool): what the model wrote, ending in its
    call, and the tool's reply: a short text and, when the call was good, the zoomed frames."""

    said: str
    reply: str
    video: VideoInput | None = None


@dataclass(frozen=True)
class Request:
    """A prompt: the question text, an optional video, optional labelled still images, an optional system line.

    `video=None` is the blind (question-only) mode; masked modes use `VideoInput.drop` / `.blank`.
    """

    question: str
    video: VideoInput | None = None
    images: tuple[tuple[str, np.ndarray], ...] = field(default_factory=tuple)
    system: str | None = None
    turns: tuple[ToolTurn, ...] = ()  # earlier turns of a multi-turn answer, oldest first

    def then(self, turn: ToolTurn) -> Request:
        """This request continued after `turn` (the model answers again after the tool's reply)."""
        return replace(self, turns=(*self.turns, turn))

    def without_video(self) -> Request:
        return replace(self, video=None)
