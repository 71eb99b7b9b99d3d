"""The questioner's GRPO settings (a light module: no torch)."""

from __future__ import annotations

from pydantic import AliasChoices, ConfigDict, Field

from videozero.questioner.verify_config import VerifyConfig
from videozero.questioner.warmup_config import WriterWarmupConfig
from videozero.solver.grpo_config import GRPOConfig


class QuestionerGRPOConfig(GRPOConfig):
    """GRPO of the model writer on r_Q: the solver's GRPO settings (the same trainer runs the update) with
    the writer's defaults, plus what writing and verifying need. The solver-reward settings (`weights`,
    `label_mode`) and token-selective credit do not apply: a write's reward is one number, r_Q."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

    steps: int = Field(4, ge=0, description="policy updates per round")
    prompts_per_step: int = Field(
        4,
        ge=1,
        validation_alias=AliasChoices("prompts_per_step", "spans_per_step"),
        description="evidence spans written about per step (each one prompt of the writer)",
    )
    group_size: int = Field(4, ge=2, description="writes per span (the GRPO group)")
    temperature: float = Field(1.0, gt=0, description="writing temperature")
    max_new_tokens: int = Field(120, ge=16, description="a write's length cap")
    projector_lr: float = Field(0.0, ge=0, description="the questioner's projector stays as it is by default")
    token_selective: bool = Field(False, description="not used: r_Q has no accuracy / alignment parts")
    format_floor: float = Field(
        0.25, ge=0, le=1, description="parse rate below which the supervised anchor is added"
    )
    micro_batch_size: int = Field(
        2,
        ge=1,
        description="writes per forward+backward of the update (nano, a default round's warmed-up writer, "
        "2 steps: the update peaked at 5.0 GB with 4, 3.4 GB with 2, 3.5 GB with 1, all at the same speed)",
    )
    invalid_reward: float = Field(
        -1.0, description="r_Q of a write that cannot be parsed or has degenerate evidence"
    )
    repetition_threshold: float = Field(0.85, gt=0, le=1)
    verify: VerifyConfig = Field(default_factory=lambda: VerifyConfig(n_full=4, n_probe=2))
    warmup: WriterWarmupConfig = Field(
        default_factory=WriterWarmupConfig,
        description="supervised writes in the writer's format before the first round (questioner.warmup)",
    )
