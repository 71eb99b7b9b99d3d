"""The questioner's supervised warm-up settings (a light module: no torch)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from videozero.solver.grpo_config import LoraSettings


class WriterWarmupConfig(BaseModel):
    """Supervised writes before the questioner's first GRPO step (0 steps: none)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

    steps: int = Field(0, ge=0, description="optimiser steps")
    per_video: int = Field(
        12, ge=1, description="template writes per training video (and up to 4 label writes)"
    )
    batch_size: int = Field(8, ge=1)
    micro_batch_size: int = Field(
        1,
        ge=1,
        description="writes per forward+backward (a write's prompt and target are ~2x a solver answer's: nano "
        "peaked at 3.0 GB with 1, 4.6 GB with 2, at the same speed)",
    )
    lr: float = Field(2e-4, gt=0)
    lora: LoraSettings | None = Field(default_factory=lambda: LoraSettings(r=16, alpha=32))
    seed: int = 0
