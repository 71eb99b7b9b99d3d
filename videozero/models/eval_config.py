"""How a model is asked when it is scored: the frames it is shown and greedy answers (no torch import)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from videozero.answer_format import ANSWER_END
from videozero.models.engines.base import SamplingParams
from videozero.video.decode import SamplingConfig
from videozero.zoom_config import ZoomEvalSettings


class EvalConfig(BaseModel):
    """How a model is evaluated; the defaults are the authors' protocol (2 fps, 32 frames, greedy)."""

    fps: float = Field(2.0, gt=0, le=30, description="frames per second of video time")
    max_frames: int = Field(32, ge=1, le=512, description="at most this many frames per video")
    short_side: int = Field(224, ge=16, le=1080, description="frames resized so the short side is this")
    query_frames: int = Field(4, ge=1, le=16, description="still frames shown of a query clip (ASL)")
    max_new_tokens: int = Field(96, ge=8, le=4096, description="answer length cap")
    batch_size: int = Field(8, ge=1, description="sequences per generate call")
    limit: int | None = Field(None, ge=1, description="evaluate only the first N items or questions")
    zoom: ZoomEvalSettings = Field(default_factory=ZoomEvalSettings, description="zoom at evaluation (off)")

    @property
    def sampling(self) -> SamplingConfig:
        return SamplingConfig(fps=self.fps, max_frames=self.max_frames, short_side=self.short_side)

    @property
    def greedy(self) -> SamplingParams:
        return SamplingParams(n=1, temperature=0.0, max_new_tokens=self.max_new_tokens, stop=(ANSWER_END,))
