"""The local GRPO trainer (torch; CPU and one GPU): the loss maths first, then the loop around it.

Loss maths (pure functions on tensors, tested on hand-computed values):
- `group_advantages`: (r - mean(group)) / (std(group) + eps) per group of rollouts of one question;
- `token_advantages`: every completion token takes the total advantage, or with token-selective credit
  (Zoom-Zero) evidence tokens take the alignment advantage and answer tokens the accuracy advantage;
- `clipped_policy_loss`: PPO's clipped ratio objective, summed over tokens and divided by the number of
  completion tokens in the whole step (token-level aggregation, as DAPO), so long and short completions
  weigh by their tokens and gradient accumulation over micro-batches equals one big batch;
- `k3_kl`: the unbiased, non-negative KL estimate exp(q - p) - (q - p) - 1 to a frozen reference.

The loop, with its boundaries explicit: `rollout` (a group per question, scored by the trainer's scorer,
`scoring.score_completion` unless another is passed in) -> `experience` / `make_experience` (advantages;
groups whose rewards do not vary dropped: they carry no gradient, only noise through the normalisation)
-> `update` (the one update loop; the questioner's trainer hands it experiences of its own r_Q). A format floor guards against the collapse measured on
mixed tasks: when a step's format rate falls below it, a supervised anchor on the training targets is
added to that step's loss.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from videozero.answer_format import render_answer
from videozero.models.engines.transformers_engine import TransformersEngine
from videozero.models.loader import LoadedModel
from videozero.models.nano.frame_cache import cache_frame_cells
from videozero.models.prompt import TokenRegion, build_batch, token_logprobs
from videozero.models.shared_prompt import grouped_token_logprobs, shares_prompts
from videozero.scoring import SolverScorer, solver_scorer
from videozero.solver.grpo_config import GRPOConfig
from videozero.solver.rollout import QuestionRollouts, RolloutConfig, SolverQuestion, rollout_questions
from videozero.solver.training import (
    frozen_copy,
    param_groups,
    prepare_trainable,
    seed_everything,
    supervised_backward,
)
from videozero.solver.zoom_reward import add_zoom_rewards, zoom_accuracies

# -- loss maths -------------------------------------------------------------------------------------------


def group_advantages(
    rewards: torch.Tensor, group_size: int, scale_std: bool = True, eps: float = 1e-4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-rollout advantages normalised within each group of `group_size`, and which groups vary.

    >>> adv, varied = group_advantages(torch.tensor([1.0, 0.0, 0.5, 0.5]), 2)
    >>> [round(x, 3) for x in adv.tolist()], varied.tolist()
    ([0.707, -0.707, 0.0, 0.0], [True, False])
    """
    r = rewards.view(-1, group_size).float()
    centred = r - r.mean(dim=1, keepdim=True)
    std = r.std(dim=1, keepdim=True, unbiased=True)
    varied = (r.max(dim=1).values - r.min(dim=1).values) > 1e-6
    adv = centred / (std + eps) if scale_std else centred
    adv = torch.where(varied[:, None], adv, torch.zeros_like(adv))  # no spread, no signal (and no 0 / 0)
    return adv.view(-1), varied


def token_advantages(
    regions: torch.Tensor,
    mask: torch.Tensor,
    total: torch.Tensor,
    accuracy: torch.Tensor | None = None,
    alignment: torch.Tensor | None = None,
) -> torch.Tensor:
    """[B, L] advantage per token: `total` everywhere, or token-selective when `accuracy`/`alignment` given.

    Token-selective (Zoom-Zero): tokens inside <evidence> take the alignment advantage, tokens inside
    <answer> the accuracy advantage; think and stray tokens take the total advantage (they carry the
    format term).
    """
    adv = total[:, None].expand_as(regions).clone().float()
    if accuracy is not None:
        adv = torch.where(regions == int(TokenRegion.ANSWER), accuracy[:, None].float(), adv)
    if alignment is not None:
        adv = torch.where(regions == int(TokenRegion.EVIDENCE), alignment[:, None].float(), adv)
    return adv * mask


def clipped_policy_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    normaliser: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over completion tokens of -min(ratio * A, clip(ratio) * A), divided by `normaliser` (default:
    the token count of `mask`); also the fraction of tokens whose ratio was clipped.
    """
    m = mask.float()
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high) * advantages
    per_token = -torch.minimum(unclipped, clipped)
    denom = normaliser if normaliser is not None else float(m.sum().clamp(min=1))
    clip_frac = ((unclipped != clipped).float() * m).sum() / m.sum().clamp(min=1)
    return (per_token * m).sum() / denom, clip_frac


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(policy || reference): exp(ref - logp) - (ref - logp) - 1 >= 0.

    >>> k3_kl(torch.tensor([0.0]), torch.tensor([0.0])).item()
    0.0
    """
    d = ref_logp - logp
    return torch.exp(d) - d - 1


# -- the loop ---------------------------------------------------------------------------------------------


@dataclass
class Experience:
    """A step's scored rollouts made ready for the update (as OpenRLHF's experience maker hands them
    on): the rows of the groups kept, each row's request, completion tokens and advantages (total, and
    accuracy / alignment for token-selective credit), and the supervised anchor when the format floor
    fired, as (requests, target texts)."""

    requests: list
    completions: list[list[int]]
    adv_total: torch.Tensor
    adv_acc: torch.Tensor | None
    adv_align: torch.Tensor | None
    groups_kept: int
    groups_varied: int
    anchor: tuple[list, list[str]] | None = None


def make_experience(
    requests: Sequence,
    completions: Sequence[Sequence[int]],
    rewards: torch.Tensor,
    config: GRPOConfig,
    accuracy: torch.Tensor | None = None,
    alignment: torch.Tensor | None = None,
    anchor: tuple[list, list[str]] | None = None,
    segments: Sequence[Sequence[tuple]] | None = None,
) -> Experience:
    """Group-normalised advantages of `group_size` consecutive rows sharing a prompt; groups whose
    rewards do not vary are dropped (they carry no gradient, only noise through the normalisation)
    unless `skip_zero_variance` is off. With token-selective credit, a group varies if any part does.
    With `segments` (per row, its (request, completion) model turns: the zoom tool), each kept row
    becomes its turns, each with the row's advantages.

    >>> rewards = torch.tensor([1.0, 0.0, 0.5, 0.5])
    >>> config = GRPOConfig(group_size=2, token_selective=False)
    >>> exp = make_experience(["q1", "q1", "q2", "q2"], [[1], [2], [3], [4]], rewards, config)
    >>> exp.requests, exp.completions, exp.groups_kept
    (['q1', 'q1'], [[1], [2]], 1)
    """
    c = config
    adv_total, varied = group_advantages(rewards.float(), c.group_size, c.scale_std)
    adv_acc = adv_align = None
    if c.token_selective and accuracy is not None and alignment is not None:
        adv_acc, varied_acc = group_advantages(accuracy.float(), c.group_size, c.scale_std)
        adv_align, varied_align = group_advantages(alignment.float(), c.group_size, c.scale_std)
        varied = varied | varied_acc | varied_align
    keep_groups = varied if c.skip_zero_variance else torch.ones_like(varied)
    keep = keep_groups.repeat_interleave(c.group_size)
    rows = [i for i in range(len(requests)) if keep[i] and completions[i]]
    kept_requests = [requests[i] for i in rows]
    kept_completions = [list(completions[i]) for i in rows]
    if segments is not None:  # a multi-turn rollout trains as one row per model turn, its advantage on each
        turns = [(i, request, list(ids)) for i in rows for request, ids in segments[i] if ids]
        rows = [i for i, _, _ in turns]
        kept_requests = [request for _, request, _ in turns]
        kept_completions = [ids for _, _, ids in turns]
    return Experience(
        kept_requests,
        kept_completions,
        adv_total[rows],
        adv_acc[rows] if adv_acc is not None else None,
        adv_align[rows] if adv_align is not None else None,
        int(keep_groups.sum()),
        int(varied.sum()),
        anchor,
    )


@dataclass
class StepStats:
    """What one GRPO step did and measured."""

    step: int
    reward: float
    accuracy: float
    iou: float
    format_rate: float
    groups_kept: int
    groups: int
    loss: float
    kl: float
    clip_frac: float
    anchored: bool
    seconds_rollout: float
    seconds_update: float
    completion_tokens: int = 0  # tokens the rollouts sampled (all groups, kept or not)
    seconds_zoom: float = 0.0  # of seconds_rollout: answering from the zoomed views (zoom-in reward)
    zoom: float | None = None  # mean zoom-in accuracy, when measured
    tool_calls: float | None = None  # mean zoom tool calls per rollout, with the tool


@dataclass
class GRPOReport:
    steps: list[StepStats] = field(default_factory=list)

    def as_rows(self) -> list[dict]:
        return [asdict(s) for s in self.steps]


class GRPOTrainer:
    """GRPO on solver questions for a loaded video LM; `lm.model` is trained in place."""

    def __init__(
        self, lm: LoadedModel, config: GRPOConfig | None = None, scorer: SolverScorer | None = None
    ) -> None:
        self.config = config or GRPOConfig()
        self.lm = lm
        # the reward contract the rollouts are scored with (default: r_S at the config's weights)
        self.scorer = scorer or solver_scorer(self.config.weights)
        seed_everything(self.config.seed)
        prepare_trainable(
            lm, self.config.lora.peft_kwargs() if self.config.lora else None, self.config.projector_lr > 0
        )
        cache_frame_cells(lm.model)
        self.ref = None
        if self.config.kl_coef > 0:
            self.ref = frozen_copy(lm.model)
            cache_frame_cells(self.ref)
        groups = param_groups(lm.model, self.config.lr, self.config.projector_lr, self.config.weight_decay)
        self.params = [p for g in groups for p in g["params"]]
        self.optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.99))
        self.engine = TransformersEngine(lm, batch_size=max(self.config.group_size, 64))
        self.zoom_engine = None
        if self.config.weights.zoom > 0:  # who answers from the zoomed views
            if self.config.zoom.policy == "reference":
                ref = self.ref if self.ref is not None else frozen_copy(lm.model)
                self.zoom_engine = TransformersEngine(replace(lm, model=ref), batch_size=64)
            else:
                self.zoom_engine = self.engine
        self.rng = np.random.default_rng(self.config.seed)
        self.step_index = 0

    def rollout_config(self) -> RolloutConfig:
        c = self.config
        return RolloutConfig(
            n=c.group_size,
            temperature=c.temperature,
            top_p=c.top_p,
            max_new_tokens=c.max_new_tokens,
            seed=c.seed * 100_003 + self.step_index,
            label_mode=c.label_mode,
            weights=c.weights,
        )

    def train(
        self,
        questions: Sequence[SolverQuestion],
        steps: int | None = None,
        progress: Callable[[StepStats], None] | None = None,
    ) -> GRPOReport:
        """Run `steps` (default `config.steps`) GRPO steps on questions drawn from `questions`."""
        if not questions:
            raise ValueError("GRPO needs at least one question")
        report = GRPOReport()
        for _ in range(self.config.steps if steps is None else steps):
            k = min(self.config.prompts_per_step, len(questions))
            picked = [questions[i] for i in self.rng.choice(len(questions), size=k, replace=False)]
            stats = self.step(picked)
            report.steps.append(stats)
            if progress is not None:
                progress(stats)
        return report

    def step(self, questions: Sequence[SolverQuestion]) -> StepStats:
        """One GRPO step: roll out a group per question, make the experience, update on it."""
        started = time.perf_counter()
        results = self.rollout(questions)
        rolled = time.perf_counter()
        experience = self.experience(results)
        loss, kl, clip = self.update(experience)
        samples = [x for r in results for x in r.samples]
        trajectories = [x.trajectory for x in samples if x.trajectory is not None]
        return StepStats(
            step=self.step_index,
            reward=float(np.mean([x.reward.total for x in samples])),
            accuracy=float(np.mean([x.reward.accuracy for x in samples])),
            iou=float(np.mean([x.reward.alignment for x in samples])),
            format_rate=float(np.mean([x.parsed.format_ok for x in samples])),
            groups_kept=experience.groups_kept,
            groups=len(results),
            loss=loss,
            kl=kl,
            clip_frac=clip,
            anchored=experience.anchor is not None,
            seconds_rollout=rolled - started,
            seconds_update=time.perf_counter() - rolled,
            completion_tokens=sum(x.token_count for x in samples),
            seconds_zoom=self.last_zoom_seconds,
            zoom=float(np.mean([x.reward.zoom for x in samples])) if self.zoom_engine is not None else None,
            tool_calls=float(np.mean([len(t.calls) for t in trajectories])) if trajectories else None,
        )

    def rollout(self, questions: Sequence[SolverQuestion]) -> list[QuestionRollouts]:
        """A group of `group_size` rollouts per question (multi-turn with the zoom tool when `tool` is set),
        scored by the trainer's scorer, plus the zoom-in accuracy when `weights.zoom` > 0 (the policy is
        not changed)."""
        c = self.config
        results = rollout_questions(self.engine, questions, self.rollout_config(), self.scorer, c.tool)
        self.last_zoom_seconds = 0.0
        if self.zoom_engine is not None:
            started = time.perf_counter()
            accuracies = zoom_accuracies(self.zoom_engine, results, c.zoom, c.weights, c.max_new_tokens)
            add_zoom_rewards(results, accuracies, c.weights)
            self.last_zoom_seconds = time.perf_counter() - started
        return results

    last_zoom_seconds: float = 0.0

    def experience(self, results: Sequence[QuestionRollouts]) -> Experience:
        """The solver's experience: advantages of the scored groups, and the supervised anchor on the
        training targets when the step's format rate is under `format_floor` (a constructed target thinks
        its constructed rationale, as the warm-up's do)."""
        c = self.config
        samples = [x for r in results for x in r.samples]
        anchor = None
        if c.format_floor > 0 and np.mean([x.parsed.format_ok for x in samples]) < c.format_floor:
            targets = [r for r in results if r.target_answer is not None]
            if targets:
                anchor = (
                    [r.question.request for r in targets],
                    [
                        render_answer(
                            r.target_spans,
                            r.target_answer,
                            r.question.rationale if r.target_answer == r.question.answer else "",
                        )
                        for r in targets
                    ],
                )
        requests = [results[i // c.group_size].question.request for i in range(len(samples))]
        multi_turn = any(x.trajectory is not None for x in samples)
        # token-selective credit routes the zoom-in accuracy to the evidence tokens, beside the alignment
        evidence_part = [x.reward.alignment + c.weights.zoom * x.reward.zoom for x in samples]
        return make_experience(
            requests,
            [x.sample.token_ids for x in samples],
            torch.tensor([x.reward.total for x in samples]),
            c,
            torch.tensor([x.reward.accuracy for x in samples]),
            torch.tensor(evidence_part),
            anchor,
            [x.rows(r) for x, r in zip(samples, requests, strict=True)] if multi_turn else None,
        )

    def update(self, experience: Experience) -> tuple[float, float, float]:
        """One policy update on an experience (clipped objective, optional KL to the reference, optional
        supervised anchor), `updates_per_batch` times; returns (loss, kl, clip fraction)."""
        c = self.config
        self.step_index += 1
        exp = experience
        if not exp.requests and exp.anchor is None:
            return 0.0, 0.0, 0.0
        self.lm.model.train()
        self.last_batch = (exp.requests, exp.completions)
        loss = kl = clip = 0.0
        for _ in range(c.updates_per_batch):
            self.optimizer.zero_grad(set_to_none=True)
            loss, kl, clip = self._policy_pass(
                exp.requests, exp.completions, exp.adv_total, exp.adv_acc, exp.adv_align
            )
            if exp.anchor is not None:
                loss += self._supervised_pass(*exp.anchor)
            torch.nn.utils.clip_grad_norm_(self.params, c.max_grad_norm)
            self.optimizer.step()
        self.lm.model.eval()
        self._old_logp = None
        return loss, kl, clip

    _old_logp: list[torch.Tensor] | None = None
    last_batch: tuple[list, list] | None = None  # (requests, completions) of the last update

    def _policy_pass(
        self, requests, completions, adv_total, adv_acc, adv_align
    ) -> tuple[float, float, float]:
        """Accumulate gradients of the clipped objective (+ KL) over micro-batches; token-level mean."""
        c = self.config
        if not requests:
            return 0.0, 0.0, 0.0
        n_tokens = float(sum(len(t) for t in completions))
        first_pass = self._old_logp is None
        if first_pass:
            self._old_logp = []
        total_loss = total_kl = total_clip = 0.0
        mb = c.micro_batch_size
        for j, start in enumerate(range(0, len(requests), mb)):
            part = slice(start, start + mb)
            batch = build_batch(self.lm, requests[part], completions[part]).to(self.lm.device, self.lm.dtype)
            logp = self._logprobs(self.lm.model, requests[part], completions[part], batch)
            mask = batch.completion_mask
            if first_pass:
                self._old_logp.append(logp.detach())
            old = self._old_logp[j]
            adv = token_advantages(
                batch.regions,
                mask,
                adv_total[part].to(logp.device),
                adv_acc[part].to(logp.device) if adv_acc is not None else None,
                adv_align[part].to(logp.device) if adv_align is not None else None,
            )
            loss, clip_frac = clipped_policy_loss(
                logp, old, adv, mask, c.clip_eps_low, c.clip_eps_high, normaliser=n_tokens
            )
            if self.ref is not None:
                with torch.no_grad():
                    ref_logp = self._logprobs(self.ref, requests[part], completions[part], batch)
                kl = (k3_kl(logp, ref_logp) * mask).sum() / n_tokens
                loss = loss + c.kl_coef * kl
                total_kl += float(kl.detach())
            loss.backward()
            total_loss += float(loss.detach())
            total_clip += float(clip_frac) * float(mask.sum()) / n_tokens
        return total_loss, total_kl, total_clip

    def _logprobs(self, model, requests, completions, batch) -> torch.Tensor:
        """Completion-token log-probs of `batch` under `model`; rollouts of one question run its prompt
        once where the model allows it (`shared_prompt`)."""
        if self.config.share_prompts and shares_prompts(self.lm):
            return grouped_token_logprobs(model, self.lm, requests, completions, batch)
        return token_logprobs(model, batch)

    def _supervised_pass(self, requests: Sequence, targets: Sequence[str]) -> float:
        """Accumulate `anchor_coef` x the mean token NLL of `targets`, `anchor_micro_batch_size`
        sequences at a time; returns that weighted loss."""
        c = self.config
        return supervised_backward(self.lm, requests, targets, c.anchor_micro_batch_size, c.anchor_coef)


def questions_from_tasks(tasks) -> list[SolverQuestion]:
    """SolverQuestions (template-written, answers known by construction) from `tasks.VerifiableTask`s."""
    return [
        SolverQuestion(
            request=t.request(),
            kind=t.answer_kind,
            answer=t.answer,
            evidence=t.evidence,
            duration=t.duration,
            writer="template",
            family=t.family,
        )
        for t in tasks
    ]
