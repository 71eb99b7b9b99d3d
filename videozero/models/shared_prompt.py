"""Shared prompts: the N samples of one prompt run that prompt through the model once.

A video prompt of a few hundred tokens costs far more than the short answer sampled after it, and GRPO
and verification sample N answers per prompt. So each distinct prompt but its last token is run once
(`prefix_cache`), its key/value cache is repeated for its samples, and the rest continues from there:
generation (`TransformersEngine`) decodes from the repeated cache, and the training log-probs
(`grouped_token_logprobs`) run only the completions over it, with gradients flowing back through the
shared prompt. Results equal those of running every sample's full sequence (tested).

Only for models with plain 1-D positions (nano): Qwen-VL's 3-D rope positions keep per-batch offsets on
the model between calls, so those models take the plain path (on a GPU, vLLM shares prefixes itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from transformers import DynamicCache

from videozero.models.cache_arg import CACHE_ARG
from videozero.models.prompt import ModelBatch, Request, build_batch

if TYPE_CHECKING:
    from videozero.models.loader import LoadedModel


def shares_prompts(lm: LoadedModel) -> bool:
    """Whether `lm` can continue from a shared prompt cache (nano)."""
    return lm.family == "nano"


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position of each token of a left-padded batch (pads at 0), as `generate` computes them."""
    return (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)


def prefix_cache(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> DynamicCache:
    """Run each prompt of a left-padded batch except its last token; the key/value cache it leaves
    (holding gradients when they are enabled). The last token, always text, is left to the caller."""
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    vision = {
        k: v[:, :-1] if k == "mm_token_type_ids" else v
        for k, v in inputs.items()
        if k not in ("input_ids", "attention_mask")
    }
    cache = DynamicCache(config=model.config.get_text_config())
    model(
        input_ids=ids[:, :-1],
        attention_mask=mask[:, :-1],
        position_ids=_positions(mask)[:, :-1],
        use_cache=True,
        **{CACHE_ARG: cache},
        logits_to_keep=1,
        **vision,
    )
    return cache


def grouped_token_logprobs(
    model: torch.nn.Module,
    lm: LoadedModel,
    requests: Sequence[Request],
    completions: Sequence[Sequence[int]],
    like: ModelBatch,
) -> torch.Tensor:
    """`token_logprobs(model, like)` for `like = build_batch(lm, requests, completions)`, computed with
    each distinct request (by identity) run once: [B, L] with the completion tokens' log-probs."""
    slot: dict[int, int] = {}
    order = [slot.setdefault(id(r), len(slot)) for r in requests]
    distinct = list({id(r): r for r in requests}.values())
    prompts = build_batch(lm, distinct).to(lm.device, lm.dtype)
    cache = prefix_cache(model, prompts.inputs)
    index = torch.tensor(order, device=lm.device)
    cache.batch_select_indices(index)

    ids, mask = prompts.inputs["input_ids"], prompts.inputs["attention_mask"]
    lengths = [len(c) for c in completions]
    width = 1 + max(lengths)
    pad = ids[0, -1].item()  # any token id: padded positions are masked out
    suffix = torch.full((len(requests), width), pad, dtype=torch.long, device=lm.device)
    suffix_mask = torch.zeros_like(suffix)
    for row, (k, completion) in enumerate(zip(order, completions, strict=True)):
        suffix[row, 0] = ids[k, -1]
        suffix[row, 1 : 1 + len(completion)] = torch.as_tensor(list(completion), dtype=torch.long)
        suffix_mask[row, : 1 + len(completion)] = 1
    start = mask.sum(-1)[index] - 1  # position of each row's last prompt token
    logits = model(
        input_ids=suffix,
        attention_mask=torch.cat([mask[index, :-1], suffix_mask], dim=1),
        position_ids=start[:, None] + torch.arange(width, device=lm.device),
        use_cache=True,
        **{CACHE_ARG: cache},
    ).logits.float()
    picked = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, suffix[:, 1:, None]).squeeze(-1)

    out = torch.zeros(like.completion_mask.shape, dtype=picked.dtype, device=picked.device)
    full = out.shape[1]
    for row, n in enumerate(lengths):
        if n:
            out[row, full - n :] = picked[row, :n]
    return out * like.completion_mask
