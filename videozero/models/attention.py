"""Attention of a one-token query as two small matmuls on a CPU; every other call is transformers' sdpa.

A decode step attends one query token per row to that row's cache. On a CPU torch's SDPA runs its flash
kernel for it, which costs far more than the step's two products (docs/cpu.md: 22% of a 48-row nano
decode step), so `SINGLE_QUERY` does those products itself, with the grouped query heads packed onto
their key/value head (no repeated keys). Prefill and training (several query tokens), GPUs, and
calls with an attention bias keep `sdpa_attention_forward`. Outputs equal sdpa's (tested).
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

SINGLE_QUERY = "videozero_sdpa"


def single_query_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """transformers' attention signature: query [B, H, Q, D], key/value [B, KV, T, D] -> ([B, Q, H, D], None)."""
    if (
        query.shape[2] != 1
        or query.device.type != "cpu"
        or (module.training and dropout > 0)
        or kwargs.get("position_bias") is not None
        or kwargs.get("softcap") is not None
    ):
        return sdpa_attention_forward(
            module,
            query,
            key,
            value,
            attention_mask,
            dropout=dropout,
            scaling=scaling,
            is_causal=is_causal,
            **kwargs,
        )
    batch, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    q = query.reshape(batch, kv_heads, heads // kv_heads, dim)  # head h reads key/value head h // groups
    scores = torch.matmul(q, key.transpose(2, 3)) * (dim**-0.5 if scaling is None else scaling)
    if attention_mask is not None:  # [B, 1, 1, T]: True (or 0.0) where a token may be attended
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, float("-inf"))
        else:
            scores = scores + attention_mask
    probs = torch.softmax(scores.float(), dim=-1).to(value.dtype)
    out = torch.matmul(probs, value)  # [B, KV, groups, D]
    return out.reshape(batch, 1, heads, dim), None


AttentionInterface.register(SINGLE_QUERY, single_query_attention)
AttentionMaskInterface.register(SINGLE_QUERY, sdpa_mask)
