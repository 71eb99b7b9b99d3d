"""How the questioner's candidates are verified and judged (a light module: no torch)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from videozero.rewards import RewardWeights

MIN_EVIDENCE_S = 0.4
"""Shortest evidence a question may rest on (seconds): the families build none shorter, verification
judges shorter evidence degenerate."""


class VerifyConfig(BaseModel):
    """How candidates are verified and judged."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

    n_full: int = Field(8, ge=2, description="solver rollouts with the whole video (the agreement estimate)")
    n_probe: int = Field(
        4, ge=1, description="rollouts in each probe mode (blind, masked, key only, random span)"
    )
    temperature: float = Field(1.0, gt=0)
    max_new_tokens: int = Field(48, ge=8)
    band_low: float = Field(0.3, ge=0, le=1, description="accept questions with p >= this")
    band_high: float = Field(0.8, ge=0, le=1, description="...and p <= this")
    blind_max: float = Field(
        0.75,
        ge=0,
        le=1,
        description="blind-answerable: blind score at least this and not below the full score",
    )
    min_evidence_s: float = Field(MIN_EVIDENCE_S, ge=0, description="shorter evidence is degenerate")
    max_evidence_fraction: float = Field(0.5, gt=0, le=1, description="evidence covering more is degenerate")
    saliency_weight: float = Field(0.5, ge=0, description="weight of the miner's saliency in r_evid")
    necessity_weight: float = Field(0.5, ge=0, description="weight of key necessity in r_evid")
    label_mode: str = Field("auto", description="constructed | consensus | auto (rollout.training_target)")
    use_r_dep: bool = Field(
        True,
        description="reward video dependency in r_Q and reject blind-answerable questions (ablation: off)",
    )
    seed: int = 0
    weights: RewardWeights = Field(default_factory=RewardWeights)
