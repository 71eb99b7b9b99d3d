"""Settings of temporal zoom-in (no torch): Zoom-Zero's zoom-in accuracy reward and coarse-to-fine
inference, and VideoZoomer's multi-turn `<video_zoom>` tool. Light, so that `RunConfig` and the Prefect
form can load them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ZOOM_MODES = ("coarse_to_fine", "zoom_tool")  # the attempt modes of answers with zoom


class ZoomToolSettings(BaseModel):
    """VideoZoomer's multi-turn protocol: the model may call `<video_zoom>{"segment": [s, e], "fps": n}
    </video_zoom>`; the tool answers with the frames of that span and their times, and the model goes on."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

    max_turns: int = Field(3, ge=1, le=8, description="model turns at most, the final answer's included")
    max_frames: int = Field(8, ge=1, le=64, description="frames one call may ask for (VideoZoomer: 16)")
    max_fps: float = Field(4.0, gt=0, le=30, description="the highest rate a call is shown frames at")
    penalty: float = Field(0.1, ge=0, description="taken off the reward for each call the tool refused")


class ZoomRewardSettings(BaseModel):
    """Zoom-Zero's zoom-in accuracy reward: each rollout's predicted spans are shown again, densely, and a
    policy answers from that view; 1 when it is right. Its weight is `weights.zoom` (0: off)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

    policy: Literal["reference", "current"] = Field(
        "reference",
        description="who answers from the zoomed view: the frozen starting model (Zoom-Zero) or the current "
        "policy without gradients (no copy of the model kept)",
    )
    max_frames: int = Field(8, ge=1, le=64, description="frames of a zoomed view at most")
    fps: float | None = Field(
        None, gt=0, description="frames per second inside the spans (None: all there are)"
    )


class ZoomEvalSettings(BaseModel):
    """Zoom at evaluation: `coarse_to_fine` (answer on the overview; where the answer is not confident,
    answer again from the frames inside its spans and keep the more confident answer) or `zoom_tool` (the
    multi-turn tool). Held-out evaluation scores the single pass as always and the zoom mode beside it."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

    mode: Literal["off", "coarse_to_fine", "zoom_tool"] = Field(
        "off", description="off | coarse_to_fine | zoom_tool"
    )
    confidence: Literal["agreement", "probability"] = Field(
        "probability",
        description="agreement: the share of `samples` answers that agree with the majority; probability: "
        "the greedy answer tokens' joint probability",
    )
    threshold: float = Field(0.8, ge=0, le=1, description="zoom when the coarse confidence is below this")
    samples: int = Field(4, ge=2, le=32, description="answers sampled for the agreement rule")
    max_frames: int = Field(8, ge=1, le=256, description="frames of the zoomed view at most")
    fps: float = Field(2.0, gt=0, le=30, description="the rate the zoomed view is decoded at")
    tool: ZoomToolSettings = Field(default_factory=ZoomToolSettings)
