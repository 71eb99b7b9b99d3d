"""Questioner training: GRPO on r_Q = r_learn + r_dep + r_evid - repetition for the model writer.

Each step picks evidence spans on the training videos, samples a group of writes per span from the
questioner, verifies every parsed write with the frozen solver (`verify.verify`, fewer rollouts than a
round's verification), and scores it with `verify.questioner_reward`; a write that cannot be parsed, or
whose evidence is degenerate, scores `invalid_reward`. The repetition penalty clusters the step's
parsed writes by MiniLM similarity (R-Zero). The update is the solver trainer's one update loop
(`GRPOTrainer.update` on `make_experience` of the writes' r_Q: group-normalised advantages, clipped
ratio, token-level mean); when a step's parse rate falls below `format_floor`, a supervised anchor on
`model_writer.format_target` writes is added.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from videozero.errors import VideozeroError
from videozero.evidence.views import VideoEvidence
from videozero.models.engines.base import GenerationEngine
from videozero.models.loader import LoadedModel, load_model
from videozero.models.prompt import VideoInput
from videozero.questioner.model_writer import format_target, writer_inputs
from videozero.questioner.training_config import QuestionerGRPOConfig
from videozero.questioner.verify import VerifyItem, degenerate_reason, questioner_reward, verify
from videozero.questioner.writer import WriterConfig, write_questions
from videozero.solver.grpo import GRPOTrainer, make_experience
from videozero.solver.training import save_checkpoint


@dataclass
class QuestionerStep:
    step: int
    writes: int
    parsed: int
    mean_r_q: float
    groups_kept: int
    anchored: bool
    loss: float
    seconds: float


@dataclass
class QuestionerReport:
    steps: list[QuestionerStep] = field(default_factory=list)


@dataclass
class WriterVideo:
    """A training video as the questioner trainer needs it: its evidence and the video the models see."""

    evidence: VideoEvidence
    video: VideoInput


def write_rewards(
    candidates: Sequence,
    verdicts: dict[int, object],
    penalties: dict[int, float],
    invalid: float,
    use_r_dep: bool = True,
) -> list[float]:
    """r_Q of each write: `invalid` for unparseable or degenerate ones, else the verified r_Q."""
    out = []
    for i, _ in enumerate(candidates):
        v = verdicts.get(i)
        if v is None:
            out.append(invalid)
        else:
            r_dep = v.r_dep if use_r_dep else 0.0
            out.append(questioner_reward(v.r_learn, r_dep, v.r_evid, penalties.get(i, 0.0)))
    return out


class QuestionerTrainer:
    """Trains the questioner `lm` in place against the frozen solver behind `solver`."""

    def __init__(self, lm: LoadedModel, solver: GenerationEngine, config: QuestionerGRPOConfig | None = None):
        self.config = config or QuestionerGRPOConfig()
        c = self.config
        self.grpo = GRPOTrainer(lm, c)  # the solver's trainer runs the update, on this config
        self.solver = solver
        self.rng = np.random.default_rng(c.seed)

    @property
    def lm(self) -> LoadedModel:
        return self.grpo.lm

    def train(
        self, videos: Sequence[WriterVideo], progress: Callable[[QuestionerStep], None] | None = None
    ) -> QuestionerReport:
        if not videos:
            raise ValueError("questioner training needs at least one video")
        report = QuestionerReport()
        for _ in range(self.config.steps):
            stats = self.step(videos)
            report.steps.append(stats)
            if progress is not None:
                progress(stats)
        return report

    def step(self, videos: Sequence[WriterVideo]) -> QuestionerStep:
        from videozero.questioner.dedup import QuestionEmbedder, repetition_penalty

        c = self.config
        started = time.perf_counter()
        inputs, owners = [], []
        usable = [(wv, writer_inputs(wv.evidence, wv.video, k=4)) for wv in videos]
        usable = [(wv, choices) for wv, choices in usable if choices]
        if not usable:
            raise VideozeroError("no training video has an evidence span the questioner can write about.")
        for _ in range(c.prompts_per_step):
            wv, choices = usable[int(self.rng.integers(len(usable)))]
            inputs.append(choices[int(self.rng.integers(len(choices)))])
            owners.append(wv)
        writes = write_questions(
            self.grpo.engine,
            inputs,
            WriterConfig(n=c.group_size, temperature=c.temperature, max_new_tokens=c.max_new_tokens),
        )
        flat = [(w, owner) for group, owner in zip(writes, owners, strict=True) for w in group]
        items, where = [], []
        for i, (w, owner) in enumerate(flat):
            cand = w.candidate
            ev = owner.evidence
            if cand.reject_reason is None and degenerate_reason(cand.evidence, ev.duration, c.verify) is None:
                items.append(
                    VerifyItem(
                        cand, owner.video, VideoInput(ev.frames, ev.timestamps), ev.duration, ev.segments, i
                    )
                )
                where.append(i)
        verdicts = dict(zip(where, verify(self.solver, items, c.verify), strict=True))
        penalties: dict[int, float] = {}
        if len(items) > 1:
            from videozero.questioner.dedup import dedup_text

            emb = QuestionEmbedder().embed([dedup_text(it.candidate) for it in items])
            penalties = dict(
                zip(where, (float(x) for x in repetition_penalty(emb, c.repetition_threshold)), strict=True)
            )
        rewards = write_rewards(
            [w for w, _ in flat], verdicts, penalties, c.invalid_reward, c.verify.use_r_dep
        )
        parsed = len(items)
        anchor = None
        if c.format_floor > 0 and parsed < c.format_floor * max(1, len(flat)):
            anchor = (
                [inp.request for inp in inputs],
                [
                    format_target(o.evidence, inp.spans, self.rng)
                    for inp, o in zip(inputs, owners, strict=True)
                ],
            )
        experience = make_experience(
            [inp.request for inp in inputs for _ in range(c.group_size)],
            [w.sample.token_ids for w, _ in flat],
            torch.tensor(list(rewards), dtype=torch.float32),
            self.grpo.config,
            anchor=anchor,
        )
        loss, _, _ = self.grpo.update(experience)
        kept = experience.groups_varied
        return QuestionerStep(
            step=self.grpo.step_index,
            writes=len(flat),
            parsed=parsed,
            mean_r_q=float(np.mean(rewards)) if rewards else 0.0,
            groups_kept=kept,
            anchored=anchor is not None,
            loss=loss,
            seconds=time.perf_counter() - started,
        )


def train_questioner_round(
    questioner: str,
    solver: GenerationEngine,
    videos: Sequence[WriterVideo],
    out,
    config: QuestionerGRPOConfig | None = None,
    progress: Callable[[QuestionerStep], None] | None = None,
) -> tuple[Path, QuestionerReport]:
    """Load the questioner, train it against the frozen `solver` on `videos` and save it at `out`;
    returns (the saved directory, the report). The questioner stage records it in the store."""
    trainer = QuestionerTrainer(load_model(questioner, device="auto"), solver, config)
    report = trainer.train(videos, progress)
    return save_checkpoint(trainer.lm, out), report
