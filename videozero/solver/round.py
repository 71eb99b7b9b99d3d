"""One solver phase of a round: GRPO on the round's questions from the last checkpoint, saved and recorded."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from videozero.solver.grpo import GRPOReport, GRPOTrainer, StepStats
from videozero.solver.grpo_config import GRPOConfig
from videozero.solver.rollout import SolverQuestion
from videozero.solver.training import record_checkpoint, save_checkpoint


@dataclass
class SolverRound:
    """Where the round's checkpoint went, its store id (if recorded), and the step-by-step report."""

    path: Path
    checkpoint_id: int | None
    report: GRPOReport


def train_solver_round(
    model: str | Path,
    questions: Sequence[SolverQuestion],
    out: str | Path,
    config: GRPOConfig | None = None,
    store=None,
    run_id: int | None = None,
    round_id: int | None = None,
    device: str = "auto",
    progress: Callable[[StepStats], None] | None = None,
) -> SolverRound:
    """Load `model`, train it with GRPO on `questions`, save a HF checkpoint at `out`, record it."""
    from videozero.models.loader import load_model

    lm = load_model(model, device=device)
    trainer = GRPOTrainer(lm, config)
    report = trainer.train(questions, progress=progress)
    path = save_checkpoint(trainer.lm, out)
    checkpoint_id = None
    if store is not None:
        checkpoint_id = record_checkpoint(
            store, path, base_model=str(model), stage="grpo", run_id=run_id, round_id=round_id
        )
    return SolverRound(path, checkpoint_id, report)
