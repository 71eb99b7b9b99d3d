"""Decoding from a shared prompt cache (finished rows leave the batch) and one-token-query attention."""

from __future__ import annotations

import numpy as np
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from tests.model_builds import nano_dir, noise_frames
from videozero.models.attention import SINGLE_QUERY, single_query_attention
from videozero.models.engines.cached_decode import decode_from_cache
from videozero.models.loader import load_model
from videozero.models.prompt import Request, VideoInput, build_batch
from videozero.models.shared_prompt import prefix_cache


def _batch(lm):
    frames = noise_frames(4, (96, 96))
    video = VideoInput(frames, np.array([0.0, 1.0, 2.0, 3.0]))
    requests = [
        Request("What is shown?", video),
        Request("A blind question, longer, to pad the others?"),
        Request("Which one?", video, images=(("query", frames[1]),)),
    ]
    return build_batch(lm, requests).to(lm.device, lm.dtype)


def _decode(lm, batch, eos: int, steps: int = 10):
    return decode_from_cache(
        lm.model,
        prefix_cache(lm.model, batch.inputs),
        batch.inputs["input_ids"],
        batch.inputs["attention_mask"],
        max_new_tokens=steps,
        eos_token_id=eos,
        logprobs=True,
    )


def test_finished_rows_leave_the_batch_and_the_others_decode_as_before() -> None:
    lm = load_model(nano_dir())
    batch = _batch(lm)
    free = _decode(lm, batch, eos=-1)  # no row can end: each decodes all 10 tokens
    assert all(d.finish_reason == "length" and len(d.token_ids) == 10 for d in free)
    # end-of-turn := the token row 0 writes third (and no other row writes before its own end)
    eos = free[0].token_ids[2]
    rows_per_step: list[int] = []

    def count(_module, _args, kwargs):
        if kwargs["input_ids"].shape[1] == 1:  # a decode step (the prefill runs the prompts)
            rows_per_step.append(kwargs["input_ids"].shape[0])

    hook = lm.model.register_forward_pre_hook(count, with_kwargs=True)
    try:
        ended = _decode(lm, batch, eos=eos)
    finally:
        hook.remove()
    for before, after in zip(free, ended, strict=True):
        cut = before.token_ids.index(eos) + 1 if eos in before.token_ids else len(before.token_ids)
        assert after.token_ids == before.token_ids[:cut]
        assert after.finish_reason == ("stop" if cut < 10 or before.token_ids[-1] == eos else "length")
        assert np.allclose(after.logprobs, before.logprobs[:cut], atol=1e-4)
    assert rows_per_step[:3] == [3, 3, 3] and rows_per_step[3] < 3  # row 0 left after its third token


def test_single_query_attention_equals_sdpa() -> None:
    torch.manual_seed(0)
    module = torch.nn.Module()
    module.num_key_value_groups = 3
    module.is_causal = True
    module.eval()
    query = torch.randn(5, 9, 1, 16)
    key, value = torch.randn(5, 3, 20, 16), torch.randn(5, 3, 20, 16)
    mask = torch.ones(5, 1, 1, 20, dtype=torch.bool)
    mask[:2, ..., :7] = False  # left padding
    for m in (mask, None):
        got, _ = single_query_attention(module, query, key, value, m, scaling=0.25)
        want, _ = sdpa_attention_forward(module, query, key, value, m, scaling=0.25)
        assert got.shape == want.shape == (5, 1, 9, 16)
        assert torch.allclose(got, want, atol=1e-5)
    # several query tokens: sdpa itself
    query = torch.randn(5, 9, 4, 16)
    got, _ = single_query_attention(module, query, key, value, None, scaling=0.25)
    assert torch.equal(got, sdpa_attention_forward(module, query, key, value, None, scaling=0.25)[0])


def test_nano_decodes_the_same_with_single_query_attention() -> None:
    lm = load_model(nano_dir())
    batch = _batch(lm)
    impl = lm.model.config.get_text_config()._attn_implementation
    assert impl == SINGLE_QUERY  # load_model's choice for nano on a CPU
    try:
        lm.model.set_attn_implementation("sdpa")
        plain = _decode(lm, batch, eos=-1)
        lm.model.set_attn_implementation(SINGLE_QUERY)
        fast = _decode(lm, batch, eos=-1)
    finally:
        lm.model.set_attn_implementation(impl)
    assert [d.token_ids for d in fast] == [d.token_ids for d in plain]
    for a, b in zip(fast, plain, strict=True):
        assert np.allclose(a.logprobs, b.logprobs, atol=1e-4)
