"""Configuration of the local GRPO trainer (one dataclass beside the trainer, TRL style)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from videozero.rewards import RewardWeights
from videozero.zoom_config import ZoomRewardSettings, ZoomToolSettings


class LoraSettings(BaseModel):
    """A LoRA adapter on the language model (peft); the projector is trained in full beside it."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )

    def peft_kwargs(self) -> dict:
        return {
            "r": self.r,
            "lora_alpha": self.alpha,
            "lora_dropout": self.dropout,
            "target_modules": list(self.target_modules),
        }


class ExternalBackendSettings(BaseModel):
    """A solver round trained by verl or OpenRLHF instead of the local trainer (`solver.backend`)."""

    model_config = ConfigDict(extra="forbid")

    dry_run: bool = Field(
        False, description="write the round's data and command, train nothing (the round keeps its solver)"
    )
    nodes: int = Field(1, ge=1)
    gpus_per_node: int = Field(8, ge=1)
    epochs: int = Field(1, ge=1, description="passes over the round's accepted questions")
    extra: list[str] = Field(
        default_factory=list, description="more arguments for the backend, appended to its command as given"
    )


class GRPOConfig(BaseModel):
    """GRPO on the solver reward. Defaults are the recipe measured on nano on 2 CPU cores (bench/learning.py)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

    steps: int = Field(10, ge=0, description="policy updates per round")
    prompts_per_step: int = Field(8, ge=1, description="questions sampled per step")
    group_size: int = Field(8, ge=2, description="rollouts per question (the GRPO group)")
    temperature: float = Field(1.2, gt=0, description="rollout temperature (diversity gives groups spread)")
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(40, ge=8)
    lr: float = Field(5e-5, gt=0, description="learning rate of the language model (LoRA or full)")
    projector_lr: float = Field(2e-4, ge=0, description="learning rate of the projector (0: frozen)")
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    clip_eps_low: float = Field(0.2, ge=0, description="policy-ratio clip below 1")
    clip_eps_high: float = Field(0.28, ge=0, description="policy-ratio clip above 1 (DAPO's clip-higher)")
    updates_per_batch: int = Field(1, ge=1, description="optimiser passes over each rollout batch")
    micro_batch_size: int = Field(
        4,
        ge=1,
        description="sequences per forward; gradients accumulate (nano on a round's accepted questions: "
        "the policy pass peaked at 2.8 GB with 4, 4.6 GB with 8, and was no slower)",
    )
    share_prompts: bool = Field(
        True,
        description="run each question's prompt once for its group's rollouts in the policy pass (nano; "
        "same result, less compute and memory)",
    )
    scale_std: bool = Field(True, description="divide advantages by the group std (GRPO); off: Dr. GRPO")
    skip_zero_variance: bool = Field(True, description="drop groups whose rewards do not vary")
    token_selective: bool = Field(
        True,
        description="Zoom-Zero credit: evidence tokens take the alignment advantage, answer tokens the "
        "accuracy advantage, the rest the total",
    )
    kl_coef: float = Field(0.0, ge=0, description="weight of the k3 KL to the frozen starting model")
    format_floor: float = Field(
        0.5,
        ge=0,
        le=1,
        description="when a step's format rate falls below this, add a supervised anchor on the "
        "training targets (0: never)",
    )
    anchor_coef: float = Field(0.2, ge=0, description="weight of that supervised anchor")
    anchor_micro_batch_size: int = Field(
        1,
        ge=1,
        description="sequences per forward of that anchor (whole prompts, no sharing: nano's update "
        "peaked at 2.1 GB with 1, 3.2 GB with 2, 4.05 GB with the whole step at once)",
    )
    lora: LoraSettings | None = Field(
        default_factory=LoraSettings, description="LoRA on the LM; None trains the LM in full"
    )
    seed: int = 0
    label_mode: str = Field(
        "auto", description="constructed | consensus | auto (see rollout.training_target)"
    )
    weights: RewardWeights = Field(default_factory=RewardWeights)
    zoom: ZoomRewardSettings = Field(
        default_factory=ZoomRewardSettings,
        description="how the zoom-in accuracy is measured when weights.zoom > 0 (Zoom-Zero)",
    )
    tool: ZoomToolSettings | None = Field(
        None, description="roll out with the multi-turn zoom tool (VideoZoomer); None: single-turn answers"
    )
    backend: Literal["local", "verl", "openrlhf"] = Field(
        "local", description="who trains the round: this process, or verl / OpenRLHF on a GPU cluster"
    )
    external: ExternalBackendSettings = Field(default_factory=ExternalBackendSettings)
