"""The questioner's GRPO settings (a light module: no torch)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from videozero.questioner.verify_config import VerifyConfig
from videozero.questioner.warmup_config import WriterWarmupConfig
from videozero.solver.grpo_config import LoraSettings


class QuestionerGRPOConfig(BaseModel):
    """GRPO of the model writer on r_Q."""

    steps: int = Field(4, ge=0, description="policy updates per round")
    spans_per_step: int = Field(4, ge=1, description="evidence spans written about per step")
    group_size: int = Field(4, ge=2, description="writes per span (the GRPO group)")
    temperature: float = Field(1.0, gt=0)
    max_new_tokens: int = Field(120, ge=16)
    lr: float = Field(5e-5, gt=0)
    projector_lr: float = Field(0.0, ge=0, description="the questioner's projector stays as it is by default")
    invalid_reward: float = Field(
        -1.0, description="r_Q of a write that cannot be parsed or has degenerate evidence"
    )
    format_floor: float = Field(
        0.25, ge=0, le=1, description="parse rate below which the supervised anchor is added"
    )
    anchor_coef: float = Field(0.2, ge=0)
    micro_batch_size: int = Field(
        2,
        ge=1,
        description="writes per forward+backward of the update (nano, a default round's warmed-up writer, "
        "2 steps: the update peaked at 5.0 GB with 4, 3.4 GB with 2, 3.5 GB with 1, all at the same speed)",
    )
    repetition_threshold: float = Field(0.85, gt=0, le=1)
    lora: LoraSettings | None = Field(default_factory=LoraSettings)
    verify: VerifyConfig = Field(default_factory=lambda: VerifyConfig(n_full=4, n_probe=2))
    warmup: WriterWarmupConfig = Field(
        default_factory=WriterWarmupConfig,
        description="supervised writes in the writer's format before the first round (questioner.warmup)",
    )
    seed: int = 0
