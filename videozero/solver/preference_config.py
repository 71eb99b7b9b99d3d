"""Configuration of the preference stage: factorized pairs (D2VLM) and the DPO that trains on them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from videozero.solver.grpo_config import LoraSettings
from videozero.solver.preference_pairs import FACTORS


class PreferenceConfig(BaseModel):
    """The round's preference pairs (always built, they are data) and, when `enabled`, a DPO stage on them
    after the solver's GRPO, recorded as the round's `preference` checkpoint."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

    enabled: bool = Field(False, description="train the solver on the round's pairs after its GRPO")
    pairs_per_question: int = Field(3, ge=0, le=16, description="pairs built per accepted question")
    factors: list[Literal["grounding", "answer", "both"]] = Field(
        default_factory=lambda: ["both"],
        description=f"which pair types the DPO trains on (of {', '.join(FACTORS)}; bench/preference.py: "
        "`both` helped grounding most on the validation questions)",
    )
    beta: float = Field(0.1, gt=0, description="DPO's inverse temperature on the log-ratio margin")
    answer_weight: float = Field(1.0, ge=0, description="weight of the answer tokens' log-ratio")
    grounding_weight: float = Field(1.0, ge=0, description="weight of the evidence tokens' log-ratio")
    reference: Literal["model", "none"] = Field(
        "model", description="model: the starting checkpoint is DPO's reference; none: reference-free"
    )
    steps: int = Field(8, ge=0, description="optimiser steps")
    pairs_per_step: int = Field(8, ge=1, description="pairs per optimiser step")
    micro_batch_pairs: int = Field(4, ge=1, description="pairs per forward (gradients accumulate)")
    lr: float = Field(
        2e-4,
        gt=0,
        description="learning rate of the language model (LoRA or full); chosen on the validation questions "
        "(bench/preference.py: 5e-5 moved nano too little in 8-11 steps)",
    )
    projector_lr: float = Field(0.0, ge=0, description="learning rate of the projector (0: frozen)")
    max_grad_norm: float = Field(1.0, gt=0)
    lora: LoraSettings | None = Field(default_factory=LoraSettings, description="None trains the LM in full")
    seed: int = 0

    @field_validator("factors")
    @classmethod
    def _some_factor(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one of grounding, answer, both")
        return list(dict.fromkeys(value))
