"""The solver's supervised warm-up settings, matching drills included (a light module: no torch)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from videozero.solver.grpo_config import LoraSettings


class MatchingConfig(BaseModel):
    """Matching drills before the family warm-up (0 steps, the default: none; see bench/perception.py
    --matching-steps for what they teach and the closing notes for what they did not transfer)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

    steps: int = Field(0, ge=0, description="optimiser steps of matching drills")
    drills: int = Field(1600, ge=1, description="drills drawn from the training videos")
    options: int = Field(2, ge=2, le=5)
    near_s: float = Field(1.0, ge=0, description="the matching option is shown within this of the Query")
    far_s: float = Field(4.0, gt=0, description="distractors are shown at least this far from the Query")
    batch_size: int = Field(16, ge=1)
    micro_batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-4, gt=0)


class WarmupConfig(BaseModel):
    """Supervised cold start. Defaults: about 3 minutes for nano on 2 CPU cores (bench/learning.py)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

    source: Literal["families", "generated", "both"] = Field(
        "families",
        description="families: the loop's template questions on the run's training videos (answers and "
        "evidence known by construction); generated: colour/when/count/order tasks on generated clips; "
        "both: the two mixed",
    )
    per_video: int = Field(48, ge=1, description="template questions per training video (families)")
    scenes: int = Field(
        16,
        ge=0,
        le=256,
        description="generated scenes (never held out, never asked in rounds) whose template questions "
        "are added to the training videos' (families)",
    )
    levels: list[int] = Field(
        default_factory=lambda: [0, 1, 2, 3], description="levels the template questions are drawn at"
    )
    steps: int = Field(40, ge=0, description="optimiser steps")
    batch_size: int = Field(8, ge=1)
    micro_batch_size: int = Field(
        1,
        ge=1,
        description="sequences per forward+backward; gradients accumulate over the batch (memory grows "
        "with this, not with batch_size: nano's LoRA warm-up peaked at 2.2 GB with 1, 3.5 GB with 2 "
        "for 12% less time a step, 8.7 GB with 8)",
    )
    rationale: bool = Field(
        False,
        description="template targets think their constructed hops (where a query image is shown, ...: "
        "questioner.rationale) instead of an empty think; at the default 24 LoRA steps it lowered nano's "
        "validation accuracy (bench/results/README.md)",
    )
    tool_fraction: float = Field(
        0.0,
        ge=0,
        le=1,
        description="share of the targets also taught in the zoom tool's format (a zoom into the known "
        "evidence, the tool's reply, then the answer), so that solver.tool can be used at all",
    )
    lr: float = Field(2e-4, gt=0, description="learning rate of the LM (LoRA or full)")
    projector_lr: float = Field(1e-3, ge=0, description="learning rate of the projector (0: frozen)")
    warmup_fraction: float = Field(0.1, ge=0, le=1, description="linear learning-rate warm-up, then cosine")
    lora: LoraSettings | None = Field(default_factory=lambda: LoraSettings(r=16, alpha=32))
    matching: MatchingConfig = Field(
        default_factory=MatchingConfig,
        description="query-frame matching drills on the training videos before the family targets",
    )
    train_tasks: int = Field(160, ge=1, description="generated training tasks")
    heldout_tasks: int = Field(32, ge=0, description="generated held-out tasks")
    seed: int = 0
