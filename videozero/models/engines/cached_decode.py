"""Decoding from a prompt cache, one token a step, with every finished row dropped from the batch.

transformers' `generate` keeps decoding a batch's finished rows (their outputs are padded) until the
longest row stops; on a CPU a decode step costs about in proportion to its rows, and in verification
about a third of the row-steps were past `</answer>` (docs/cpu.md). Here a row that writes end-of-turn
or a stop string leaves the batch and the key/value cache at once. Sampling is the engine's
(`sampling_processors`: temperature, top-k, top-p, exact inverse-CDF draw); greedy is argmax, as in
`generate`; log-probs are those of the raw distribution. Outputs equal `generate`'s (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache, LogitsProcessorList

from videozero.models.cache_arg import CACHE_ARG

# tokens decoded at a row's end to look for a stop string: longer than any stop string videozero uses
STOP_WINDOW = 12


@dataclass
class Decoded:
    """One row's completion: its token ids (end-of-turn included when written), their log-probs if asked,
    and why it ended ("stop": end-of-turn or a stop string; "length": max_new_tokens)."""

    token_ids: list[int]
    logprobs: list[float] | None
    finish_reason: str


def _stopped(tokenizer, ids: list[int], stop: Sequence[str]) -> bool:
    """Whether the row's text now holds a stop string (it is checked after every token, so the string
    ends in the last one)."""
    tail = tokenizer.decode(ids[-STOP_WINDOW:], skip_special_tokens=False)
    return any(s in tail for s in stop)


@torch.no_grad()
def decode_from_cache(
    model: torch.nn.Module,
    cache: DynamicCache,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    eos_token_id: int,
    processors: LogitsProcessorList | None = None,
    logprobs: bool = False,
    stop: Sequence[str] = (),
    tokenizer=None,
) -> list[Decoded]:
    """Continue each left-padded row of `input_ids` [B, W] whose first W - 1 positions are in `cache`.

    `processors` turn a step's float32 logits into scores whose argmax is the token (the engine's
    sampler leaves one finite entry); without them decoding is greedy. `stop` strings need `tokenizer`.
    The cache is consumed (rows are dropped from it as they finish)."""
    if stop and tokenizer is None:
        raise ValueError("stop strings need the tokenizer to read the rows' text")
    rows = list(range(input_ids.shape[0]))  # original row of each live row
    ids: list[list[int]] = [[] for _ in rows]
    lps: list[list[float]] = [[] for _ in rows]
    finish = ["length"] * len(rows)
    mask = attention_mask.long()
    tokens = input_ids[:, -1:]
    positions = (mask.sum(-1, keepdim=True) - 1).clamp(min=0)
    for step in range(max_new_tokens):
        logits = (
            model(
                input_ids=tokens,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                **{CACHE_ARG: cache},
            )
            .logits[:, -1]
            .float()
        )
        picked = (processors(None, logits.clone()) if processors is not None else logits).argmax(-1)
        chosen = picked.tolist()
        row_lps = (
            torch.log_softmax(logits, dim=-1).gather(-1, picked[:, None]).squeeze(-1).tolist()
            if logprobs
            else None
        )
        keep: list[int] = []
        for k, (row, token) in enumerate(zip(rows, chosen, strict=True)):
            ids[row].append(token)
            if row_lps is not None:
                lps[row].append(row_lps[k])
            if token == eos_token_id or (stop and _stopped(tokenizer, ids[row], stop)):
                finish[row] = "stop"
            else:
                keep.append(k)
        if not keep or step == max_new_tokens - 1:
            break
        if len(keep) < len(rows):
            index = torch.tensor(keep, device=mask.device)
            cache.batch_select_indices(index)
            rows = [rows[k] for k in keep]
            mask, positions, picked = mask[index], positions[index], picked[index]
        tokens = picked[:, None]
        positions = positions + 1
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
    return [Decoded(ids[row], lps[row] if logprobs else None, finish[row]) for row in range(len(ids))]
