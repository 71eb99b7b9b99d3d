"""One solver phase of a round: GRPO on the round's questions from the last checkpoint, saved."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from videozero.models.loader import load_model
from videozero.solver.grpo import GRPOReport, GRPOTrainer, StepStats
from videozero.solver.grpo_config import GRPOConfig
from videozero.solver.rollout import SolverQuestion
from videozero.solver.training import save_checkpoint


@dataclass
class SolverRound:
    """Where the round's checkpoint went and the step-by-step report."""

    path: Path
    report: GRPOReport


def train_solver_round(
    model: str | Path,
    questions: Sequence[SolverQuestion],
    out: str | Path,
    config: GRPOConfig | None = None,
    device: str = "auto",
    progress: Callable[[StepStats], None] | None = None,
) -> SolverRound:
    """Load `model`, train it with GRPO on `questions` and save a HF checkpoint at `out` (the solver
    stage records it in the store)."""
    lm = load_model(model, device=device)
    trainer = GRPOTrainer(lm, config)
    report = trainer.train(questions, progress=progress)
    return SolverRound(save_checkpoint(trainer.lm, out), report)
