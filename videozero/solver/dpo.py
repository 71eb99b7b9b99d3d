"""Factorized DPO (torch; CPU and one GPU): sigmoid DPO whose log-ratio is split by answer-format block.

For a pair (chosen y+, rejected y-) of one prompt x, each response's log-probability under the policy
and under the reference is summed separately over its evidence tokens, its answer tokens and the rest
(`block_logps`, from `prompt.TokenRegion`). The margin is

    h = w_g (Δ_evi(y+) - Δ_evi(y-)) + w_a (Δ_ans(y+) - Δ_ans(y-)) + (Δ_rest(y+) - Δ_rest(y-)),
    Δ_block(y) = log π(y_block | x, y_<block) - log π_ref(y_block | x, y_<block),

and the loss is -log σ(β h) (`factored_dpo_loss`; Rafailov et al.'s sigmoid DPO when both weights are
1). Reference-free drops the reference terms (as D2VLM's focused preference loss). The reference is the
starting model, whose log-probs are computed once before the first update for the pairs the schedule will
draw, so no second model is held in memory. Chosen and rejected share their prompt, which runs once
(`shared_prompt`) where the model allows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from videozero.models.loader import LoadedModel
from videozero.models.nano.frame_cache import cache_frame_cells
from videozero.models.prompt import Request, TokenRegion, build_batch, token_logprobs
from videozero.models.shared_prompt import grouped_token_logprobs, shares_prompts
from videozero.solver.preference_config import PreferenceConfig
from videozero.solver.training import param_groups, prepare_trainable, seed_everything


def block_logps(logp: torch.Tensor, regions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, 3] sums of completion-token log-probs over the evidence block, the answer block and the rest.

    >>> logp = torch.tensor([[0.0, -1.0, -2.0, -4.0]])
    >>> regions = torch.tensor([[0, 3, 4, 2]])
    >>> block_logps(logp, regions, regions > 0).tolist()
    [[-1.0, -2.0, -4.0]]
    """
    m = mask.to(logp.dtype)
    evidence = (regions == int(TokenRegion.EVIDENCE)).to(logp.dtype) * m
    answer = (regions == int(TokenRegion.ANSWER)).to(logp.dtype) * m
    rest = m - evidence - answer
    return torch.stack([(logp * part).sum(-1) for part in (evidence, answer, rest)], dim=-1)


def factored_dpo_loss(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    ref_chosen: torch.Tensor | None,
    ref_rejected: torch.Tensor | None,
    beta: float,
    answer_weight: float = 1.0,
    grounding_weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean -log σ(β h) over pairs and the per-pair margin h, from [P, 3] block log-probs (`block_logps`);
    reference terms None: reference-free.

    >>> c, r = torch.tensor([[-1.0, -2.0, 0.0]]), torch.tensor([[-3.0, -2.0, 0.0]])
    >>> loss, h = factored_dpo_loss(c, r, None, None, beta=1.0)
    >>> round(loss.item(), 4), h.tolist()
    (0.1269, [2.0])
    >>> factored_dpo_loss(c, r, None, None, beta=1.0, grounding_weight=0.0)[1].tolist()
    [0.0]
    """
    delta = chosen - rejected
    if ref_chosen is not None and ref_rejected is not None:
        delta = delta - (ref_chosen - ref_rejected)
    weights = torch.tensor([grounding_weight, answer_weight, 1.0], dtype=delta.dtype, device=delta.device)
    margin = (delta * weights).sum(-1)
    return -F.logsigmoid(beta * margin).mean(), margin


@dataclass(frozen=True)
class PairExample:
    """A pair as the trainer takes it: the question's request, the two response texts, its factor."""

    request: Request
    chosen: str
    rejected: str
    factor: str = ""


@dataclass
class DPOStep:
    """What one DPO step did and measured."""

    step: int
    loss: float
    margin: float  # mean β-free margin h of the step's pairs
    # share of pairs with h > 0 (the policy prefers the chosen response more than the reference does)
    accuracy: float
    seconds: float


class DPOTrainer:
    """Factorized DPO of a loaded video LM on preference pairs; `lm.model` is trained in place."""

    def __init__(self, lm: LoadedModel, config: PreferenceConfig | None = None) -> None:
        self.config = config or PreferenceConfig()
        self.lm = lm
        seed_everything(self.config.seed)
        prepare_trainable(
            lm, self.config.lora.peft_kwargs() if self.config.lora else None, self.config.projector_lr > 0
        )
        cache_frame_cells(lm.model)
        groups = param_groups(lm.model, self.config.lr, self.config.projector_lr)
        self.params = [p for g in groups for p in g["params"]]
        self.optimizer = torch.optim.AdamW(groups, betas=(0.9, 0.99))
        self.rng = np.random.default_rng(self.config.seed)
        self.eos = lm.tokenizer.convert_tokens_to_ids("<|im_end|>")

    def schedule(self, n_pairs: int, steps: int) -> list[np.ndarray]:
        """The pair indices of each step: passes over the pairs in a fresh random order each."""
        k = min(self.config.pairs_per_step, n_pairs)
        order: list[int] = []
        while len(order) < steps * k:
            order += self.rng.permutation(n_pairs).tolist()
        return [np.array(order[i * k : (i + 1) * k]) for i in range(steps)]

    def train(
        self,
        pairs: Sequence[PairExample],
        steps: int | None = None,
        progress: Callable[[DPOStep], None] | None = None,
        seconds: float | None = None,
    ) -> list[DPOStep]:
        """`steps` (default `config.steps`) DPO steps on `pairs`; with `seconds`, stop at the first step
        that ends past that wall time (the reference pass counts)."""
        if not pairs:
            raise ValueError("DPO needs at least one preference pair")
        started = time.perf_counter()
        plan = self.schedule(len(pairs), self.config.steps if steps is None else steps)
        ref = self.reference(pairs, sorted({int(i) for batch in plan for i in batch}))
        report: list[DPOStep] = []
        for index, batch in enumerate(plan):
            if seconds is not None and time.perf_counter() - started >= seconds:
                break
            step_started = time.perf_counter()
            loss, margins = self.step([pairs[int(i)] for i in batch], [ref.get(int(i)) for i in batch])
            report.append(
                DPOStep(
                    index,
                    loss,
                    float(margins.mean()),
                    float((margins > 0).float().mean()),
                    time.perf_counter() - step_started,
                )
            )
            if progress is not None:
                progress(report[-1])
        return report

    def tokens(self, text: str) -> list[int]:
        """A response's token ids, closed by the end-of-turn token (as the warm-up's targets are)."""
        return self.lm.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.eos]

    def pair_blocks(self, pairs: Sequence[PairExample]) -> tuple[torch.Tensor, torch.Tensor]:
        """[P, 3] block log-probs of the chosen and of the rejected responses (with gradients when on)."""
        requests = [p.request for p in pairs for _ in (0, 1)]
        completions = [self.tokens(text) for p in pairs for text in (p.chosen, p.rejected)]
        lm = self.lm
        batch = build_batch(lm, requests, completions).to(lm.device, lm.dtype)
        if shares_prompts(lm):
            logp = grouped_token_logprobs(lm.model, lm, requests, completions, batch)
        else:
            logp = token_logprobs(lm.model, batch)
        blocks = block_logps(logp, batch.regions, batch.completion_mask)
        return blocks[0::2], blocks[1::2]

    @torch.no_grad()
    def reference(self, pairs: Sequence[PairExample], indices: Sequence[int]) -> dict[int, torch.Tensor]:
        """Pair index -> [2, 3] block log-probs of (chosen, rejected) under the model as it is now."""
        if self.config.reference == "none":
            return {}
        self.lm.model.eval()
        out: dict[int, torch.Tensor] = {}
        mb = self.config.micro_batch_pairs
        for start in range(0, len(indices), mb):
            part = list(indices[start : start + mb])
            chosen, rejected = self.pair_blocks([pairs[i] for i in part])
            for j, i in enumerate(part):
                out[i] = torch.stack([chosen[j], rejected[j]]).detach()
        return out

    def step(
        self, pairs: Sequence[PairExample], ref: Sequence[torch.Tensor | None]
    ) -> tuple[float, torch.Tensor]:
        """One optimiser step on `pairs` (micro-batches accumulate to the mean over all of them)."""
        c = self.config
        self.lm.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total, margins = 0.0, []
        for start in range(0, len(pairs), c.micro_batch_pairs):
            part = slice(start, start + c.micro_batch_pairs)
            chosen, rejected = self.pair_blocks(pairs[part])
            refs = ref[part]
            ref_c = ref_r = None
            if all(r is not None for r in refs):
                ref_c = torch.stack([r[0] for r in refs]).to(chosen.device)
                ref_r = torch.stack([r[1] for r in refs]).to(chosen.device)
            loss, margin = factored_dpo_loss(
                chosen, rejected, ref_c, ref_r, c.beta, c.answer_weight, c.grounding_weight
            )
            scaled = loss * (len(margin) / len(pairs))
            scaled.backward()
            total += float(scaled.detach())
            margins.append(margin.detach())
        torch.nn.utils.clip_grad_norm_(self.params, c.max_grad_norm)
        self.optimizer.step()
        self.lm.model.eval()
        return total, torch.cat(margins)
