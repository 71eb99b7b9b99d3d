"""What the questioner proposes each round and how it is verified (a light module: no torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from videozero.questioner.verify_config import VerifyConfig

if TYPE_CHECKING:
    from videozero.models.eval_config import EvalConfig

FAMILIES = ("grounding", "ordering", "arrow_of_time", "what_next", "counting", "semantic_grounding")


class QuestionerConfig(BaseModel):
    """What the questioner proposes each round and how it is verified."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting is an error

    families: list[str] = Field(default_factory=lambda: list(FAMILIES), description="question families used")
    templates: bool = Field(True, description="propose template questions (off: only the model writer's)")
    per_video: int = Field(12, ge=1, description="template candidates per training video per round")
    heldout_per_video: int = Field(
        12, ge=0, description="held-out questions per held-out video (once per run)"
    )
    heldout_levels: list[int] = Field(
        default_factory=lambda: [0, 1], description="levels the held-out set cycles"
    )
    model_spans_per_video: int = Field(
        2, ge=0, description="evidence spans per video the model writer writes on"
    )
    dedup_threshold: float = Field(
        0.9, gt=0, le=1, description="text cosine at which two questions are duplicates"
    )
    repetition_threshold: float = Field(
        0.85, gt=0, le=1, description="text cosine that clusters a batch (R-Zero)"
    )
    solver_fps: float = Field(2.0, gt=0, description="frames per second the solver sees")
    solver_max_frames: int = Field(32, ge=1, description="at most this many frames per video for the solver")
    chunk: int = Field(8, ge=1, description="candidates verified (and committed) together")
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    seed: int = 0

    @property
    def solver_sampling(self) -> EvalConfig:
        from videozero.models.eval_config import EvalConfig

        return EvalConfig(fps=self.solver_fps, max_frames=self.solver_max_frames)
