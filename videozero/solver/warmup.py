"""Warm-up: a short supervised cold start on self-generated verifiable tasks, before reinforcement learning.

Zero-shot, the learner does not write the answer format (SmolLM2 followed it 0 times in 45), so every
GRPO group would score the same and carry no gradient. As VideoZoomer and R1-style pipelines do, a few
supervised steps on targets known by construction (no human labels) teach the format
`<think></think><evidence>[s, e]</evidence><answer>..</answer>` and the tasks before GRPO takes over.
The targets are the loop's own template families on the run's training videos
(`questioner.supervision`), the generated colour/when/count/order clips (`solver.tasks`), or both.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from videozero.answer_format import parse_answer, render_answer
from videozero.models.loader import LoadedModel
from videozero.models.nano.frame_cache import cache_frame_cells
from videozero.models.prompt import Request
from videozero.solver.rollout import SolverQuestion
from videozero.solver.training import (
    param_groups,
    prepare_trainable,
    seed_everything,
    supervised_backward,
    trainable_count,
)
from videozero.solver.warmup_config import WarmupConfig
from videozero.solver.zoom_tool import warmup_rows
from videozero.zoom_config import ZoomToolSettings


@dataclass
class WarmupReport:
    steps: int
    examples: int
    first_loss: float
    last_loss: float
    trainable: int
    seconds: float
    seconds_per_step: float


def supervised_targets(questions: Sequence[SolverQuestion], rationale: bool = False) -> list[str]:
    """The answer-format text of each question's constructed answer and evidence, with its constructed
    rationale as the think text (`rationale=False`: an empty think)."""
    return [render_answer(q.evidence, q.answer or "", q.rationale if rationale else "") for q in questions]


def warmup(
    lm: LoadedModel,
    questions: Sequence[SolverQuestion],
    config: WarmupConfig | None = None,
    progress: Callable[[int, float], None] | None = None,
    tool: ZoomToolSettings | None = None,
) -> WarmupReport:
    """Supervised steps on `questions` (their constructed targets, and with `config.tool_fraction` some
    of them in the zoom tool's format at `tool`'s limits); `lm.model` is trained in place."""
    usable = [q for q in questions if q.answer is not None]
    if not usable:
        raise ValueError("the warm-up needs questions with constructed answers")
    targets = supervised_targets(usable, config.rationale if config else False)
    requests = [q.request for q in usable]
    if config is not None and config.tool_fraction > 0:
        tool_requests, tool_targets = tool_examples(usable, targets, config.tool_fraction, config.seed, tool)
        requests, targets = requests + tool_requests, targets + tool_targets
    return supervised_steps(lm, requests, targets, config, progress)


def tool_examples(
    questions: Sequence[SolverQuestion],
    targets: Sequence[str],
    fraction: float,
    seed: int,
    tool: ZoomToolSettings | None = None,
) -> tuple[list[Request], list[str]]:
    """The zoom tool's format taught on a seeded `fraction` of `questions` (`zoom_tool.warmup_rows`):
    (prompts, targets), two rows a question, the answer's think as in its single-turn target."""
    tool = tool or ZoomToolSettings()
    rng = np.random.default_rng(seed + 17)
    picked = [i for i in range(len(questions)) if rng.random() < fraction]
    requests: list[Request] = []
    texts: list[str] = []
    for i in picked:
        q = questions[i]
        think = parse_answer(targets[i]).think
        for request, target in warmup_rows(
            q.request, q.evidence, q.answer or "", q.duration or 0.0, q.zoom_source, tool, think
        ):
            requests.append(request)
            texts.append(target)
    return requests, texts


def supervised_steps(
    lm: LoadedModel,
    requests: Sequence[Request],
    targets: Sequence[str],
    config: WarmupConfig | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> WarmupReport:
    """`config.steps` supervised steps (mean token loss of `targets` given `requests`, LoRA or full LM
    plus the projector, linear warm-up then cosine); `lm.model` is trained in place."""
    config = config or WarmupConfig()
    if not requests or len(requests) != len(targets):
        raise ValueError(
            f"supervised steps need one target per request, got {len(requests)} and {len(targets)}"
        )
    seed_everything(config.seed)
    prepare_trainable(lm, config.lora.peft_kwargs() if config.lora else None, config.projector_lr > 0)
    cache_frame_cells(lm.model)
    groups = param_groups(lm.model, config.lr, config.projector_lr)
    params = [p for g in groups for p in g["params"]]
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.99))
    steps = config.steps
    ramp = max(1, round(steps * config.warmup_fraction))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / ramp) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / max(1, steps))),
    )
    rng = np.random.default_rng(config.seed)
    started = time.perf_counter()
    losses: list[float] = []
    order = rng.permutation(len(requests))
    cursor = 0
    lm.model.train()
    for step in range(steps):
        if cursor + config.batch_size > len(order):
            order, cursor = rng.permutation(len(requests)), 0
        idx = order[cursor : cursor + config.batch_size]
        cursor += config.batch_size
        opt.zero_grad(set_to_none=True)
        loss = supervised_backward(
            lm, [requests[i] for i in idx], [targets[i] for i in idx], config.micro_batch_size
        )
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(loss)
        if progress is not None:
            progress(step + 1, losses[-1])
    lm.model.eval()
    seconds = time.perf_counter() - started
    return WarmupReport(
        steps=steps,
        examples=steps * config.batch_size,
        first_loss=losses[0] if losses else math.nan,
        last_loss=float(np.mean(losses[-5:])) if losses else math.nan,
        trainable=trainable_count(lm.model),
        seconds=round(seconds, 1),
        seconds_per_step=round(seconds / max(1, steps), 2),
    )


def matching_steps(
    lm: LoadedModel,
    drills: Sequence[tuple[Request, str]],
    config: WarmupConfig,
    progress: Callable[[int, float], None] | None = None,
) -> WarmupReport:
    """`config.matching.steps` supervised steps on matching drills (`solver.matching`), with the
    warm-up's adapter, projector rate and schedule shape but the drills' batch and learning rate."""
    m = config.matching
    drill_config = config.model_copy(
        update={
            "steps": m.steps,
            "batch_size": m.batch_size,
            "micro_batch_size": m.micro_batch_size,
            "lr": m.lr,
        }
    )
    return supervised_steps(lm, [r for r, _ in drills], [t for _, t in drills], drill_config, progress)


def warmup_tasks(config: WarmupConfig, clip_dir: str | Path | None = None):
    """Training and held-out task sets for the warm-up (disjoint seeds)."""
    from videozero.solver.grpo import questions_from_tasks
    from videozero.solver.tasks import make_tasks

    train = make_tasks(config.train_tasks, seed=config.seed * 2 + 1, clip_dir=clip_dir)
    held = (
        make_tasks(config.heldout_tasks, seed=config.seed * 2 + 2, clip_dir=clip_dir)
        if config.heldout_tasks
        else []
    )
    return questions_from_tasks(train), questions_from_tasks(held), train, held
