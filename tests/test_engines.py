"""Generation engines: the transformers engine on tiny-qwen, and vLLM request construction on CPU."""

from __future__ import annotations

from itertools import pairwise
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tests.model_builds import nano_dir, noise_frames, tiny_qwen_dir
from videozero.answer_format import render_answer
from videozero.models.engines.base import SamplingParams
from videozero.models.engines.transformers_engine import TransformersEngine
from videozero.models.engines.vllm_engine import (
    samples_from_output,
    video_metadata,
    vllm_request,
    vllm_sampling_kwargs,
)
from videozero.models.loader import load_model, load_model_info
from videozero.models.prompt import Request, TokenRegion, VideoInput, build_batch, token_logprobs
from videozero.models.qwen_video import patch_times


def _requests() -> list[Request]:
    frames = noise_frames(6, (112, 140))
    video = VideoInput(frames, np.array([0.0, 0.5, 1.0, 2.5, 2.75, 4.0]))
    return [
        Request("What is shown?", video),
        Request("Blind question, a longer one to vary the padding?"),
        Request(
            "Which frame?",
            video.drop(np.array([0, 1, 0, 0, 1, 0], bool)),
            images=(("query frame", frames[2]),),
        ),
        Request("Masked.", video.blank(np.array([1, 1, 0, 0, 0, 0], bool)), system="Answer briefly."),
    ]


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_greedy_output_does_not_depend_on_batching(family: str) -> None:
    lm = load_model(tiny_qwen_dir(family))
    params = SamplingParams(temperature=0, max_new_tokens=8)
    one = TransformersEngine(lm, batch_size=1).generate(_requests(), params)
    four = TransformersEngine(lm, batch_size=4).generate(_requests(), params)
    assert [s[0].token_ids for s in one] == [s[0].token_ids for s in four]


def test_sampled_logprobs_equal_the_training_logprobs() -> None:
    lm = load_model(tiny_qwen_dir("qwen3_vl"))
    requests = _requests()
    out = TransformersEngine(lm, batch_size=3).generate(
        requests, SamplingParams(n=3, max_new_tokens=8, logprobs=True, seed=1)
    )
    pairs = [(r, s) for r, samples in zip(requests, out, strict=True) for s in samples]
    assert all(len(s.logprobs) == len(s.token_ids) for _, s in pairs)
    batch = build_batch(lm, [r for r, _ in pairs], [s.token_ids for _, s in pairs])
    lp = token_logprobs(lm.model, batch)
    assert lp.requires_grad
    for row, (_, sample) in enumerate(pairs):
        got = lp[row][batch.completion_mask[row]]
        assert torch.allclose(got, torch.tensor(sample.logprobs), atol=1e-4)


def test_nano_samples_share_the_prompt_prefill_without_changing_outputs() -> None:
    lm = load_model(nano_dir())
    requests = _requests()
    engine = TransformersEngine(lm, batch_size=4)
    assert engine.shares_prefill and not TransformersEngine(load_model(tiny_qwen_dir())).shares_prefill
    greedy = SamplingParams(n=2, temperature=0, max_new_tokens=10)
    shared = engine.generate(requests, greedy)
    plain = TransformersEngine(lm, batch_size=4, share_prefill=False).generate(requests, greedy)
    assert [[s.token_ids for s in g] for g in shared] == [[s.token_ids for s in g] for g in plain]
    # rows per batch and prompts per batch are apart: one prompt at a time gives the same outputs
    single = TransformersEngine(lm, batch_size=64, max_prompts=1).generate(requests, greedy)
    assert [[s.token_ids for s in g] for g in single] == [[s.token_ids for s in g] for g in shared]
    # sampled: the log-probs generation reports from the shared cache are those of a fresh forward
    out = engine.generate(requests, SamplingParams(n=3, max_new_tokens=10, logprobs=True, seed=3))
    assert [len(g) for g in out] == [3] * len(requests)
    pairs = [(r, s) for r, samples in zip(requests, out, strict=True) for s in samples]
    batch = build_batch(lm, [r for r, _ in pairs], [s.token_ids for _, s in pairs])
    lp = token_logprobs(lm.model, batch)
    for row, (_, sample) in enumerate(pairs):
        assert torch.allclose(lp[row][batch.completion_mask[row]], torch.tensor(sample.logprobs), atol=1e-4)
    assert len({tuple(s.token_ids) for _, s in pairs}) > len(requests)  # samples of a prompt differ


def test_grouped_logprobs_equal_full_sequences_with_their_gradients() -> None:
    from videozero.models.shared_prompt import grouped_token_logprobs

    lm = load_model(nano_dir())
    model = lm.model
    model.requires_grad_(False)
    model.projector.requires_grad_(True)
    requests = _requests()
    rows = [requests[0], requests[0], requests[2], requests[1], requests[2], requests[3]]
    completions = [[28, 29, 30], [31], [32, 33, 34, 35, 36], [37, 38], [39, 40], [41, 42, 43]]
    batch = build_batch(lm, rows, completions)

    def values_and_grads(fn):
        model.zero_grad(set_to_none=True)
        lp = fn()
        (lp * torch.linspace(0.5, 1.5, lp.shape[1])).sum().backward()
        return lp.detach(), [p.grad.clone() for p in model.projector.parameters()]

    full, full_grads = values_and_grads(lambda: token_logprobs(model, batch))
    grouped, grouped_grads = values_and_grads(
        lambda: grouped_token_logprobs(model, lm, rows, completions, batch)
    )
    assert int((full != 0).sum()) == sum(len(c) for c in completions)
    assert torch.allclose(full, grouped, atol=1e-4)
    for a, b in zip(full_grads, grouped_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-4, rtol=1e-3)


def test_completion_mask_and_regions_mark_evidence_and_answer() -> None:
    lm = load_model(tiny_qwen_dir("qwen3_vl"))
    target = render_answer([(1.0, 2.5)], "B", think="red")
    batch = build_batch(lm, _requests()[:2], [target, target])
    tok = lm.tokenizer
    for row in range(2):
        ids, regions = batch.input_ids[row], batch.regions[row]
        assert int(batch.completion_mask[row].sum()) == len(tok(target)["input_ids"]) + 1  # + end of turn
        evidence = tok.decode(ids[regions == TokenRegion.EVIDENCE])
        answer = tok.decode(ids[regions == TokenRegion.ANSWER])
        # a token that straddles two blocks (a merged "><" token) counts for the later one
        assert "evidence>[1.0, 2.5]</evidence" in evidence and "[" not in answer
        assert "answer>B</answer" in answer
        assert "red" in tok.decode(ids[regions == TokenRegion.THINK])
        assert all(int(r) != TokenRegion.PROMPT for r in regions[batch.completion_mask[row]])
    # left padding: completions end every row
    assert bool(batch.completion_mask[:, -1].all())


def test_n_samples_and_finish_reasons() -> None:
    lm = load_model(tiny_qwen_dir("qwen2_5_vl"))
    out = TransformersEngine(lm, batch_size=8).generate(
        _requests()[:2], SamplingParams(n=5, max_new_tokens=4)
    )
    assert [len(o) for o in out] == [5, 5]
    assert all(s.finish_reason in ("stop", "length") and s.logprobs is None for o in out for s in o)


def _chain_writer(lm, prompt_end: int, text: str) -> list[int]:
    """Edit nano's LM in place so that greedy decoding writes `text` after `prompt_end` and then repeats
    its last two tokens: each layer's output projections are zeroed (the last hidden state is the last
    token's embedding) and an untied head maps each token to the next. Returns the text's token ids."""
    ids = lm.tokenizer(text, add_special_tokens=False).input_ids
    chain = [prompt_end, *ids]
    assert len(set(chain)) == len(chain), "the chain needs distinct tokens"
    inner = lm.model.language_model
    with torch.no_grad():
        for layer in inner.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb = inner.get_input_embeddings().weight
        head = torch.nn.Linear(emb.shape[1], emb.shape[0], bias=False)
        head.weight.zero_()
        nexts = [*pairwise(chain), (chain[-1], chain[-2])]
        for a, b in nexts:
            head.weight[b] += 50 * emb[a] / emb[a].norm()
    inner.lm_head = head
    return ids


def test_generation_stops_at_a_stop_string_and_keeps_it() -> None:
    lm = load_model(nano_dir())
    request = Request("Answer.")
    prompt_end = int(build_batch(lm, [request]).input_ids[0, -1])
    ids = _chain_writer(lm, prompt_end, "B</answer> more text")
    stopped = len(lm.tokenizer("B</answer>", add_special_tokens=False).input_ids)
    engine = TransformersEngine(lm, batch_size=4)
    free = engine.generate([request], SamplingParams(n=1, temperature=0.0, max_new_tokens=8))[0][0]
    assert free.text.startswith("B</answer> more text") and free.finish_reason == "length"
    for params in (
        SamplingParams(n=1, temperature=0.0, max_new_tokens=8, stop=("</answer>",)),
        SamplingParams(n=3, temperature=0.0, max_new_tokens=8, stop=("</answer>",), logprobs=True),
    ):
        for sample in engine.generate([request, request], params)[1]:
            assert sample.text == "B</answer>" and sample.finish_reason == "stop"
            assert sample.token_ids == ids[:stopped]
            assert sample.logprobs is None or len(sample.logprobs) == stopped


def test_vllm_sampling_kwargs_carry_stop_strings() -> None:
    kwargs = vllm_sampling_kwargs(SamplingParams(stop=("</answer>",)), eos_token_id=2)
    assert kwargs["stop"] == ["</answer>"] and kwargs["include_stop_str_in_output"] is True
    assert "stop" not in vllm_sampling_kwargs(SamplingParams(), eos_token_id=2)
    # a completion ended by the stop string gets no end-of-turn token it never wrote
    out = SimpleNamespace(
        outputs=[
            SimpleNamespace(
                text="B</answer>",
                token_ids=[7, 8],
                logprobs=None,
                finish_reason="stop",
                stop_reason="</answer>",
            ),
            SimpleNamespace(text="B", token_ids=[7], logprobs=None, finish_reason="stop", stop_reason=2),
        ]
    )
    stopped, ended = samples_from_output(out, eos_token_id=2)
    assert stopped.token_ids == [7, 8] and stopped.finish_reason == "stop"
    assert ended.token_ids == [7, 2] and ended.finish_reason == "stop"


# -- vLLM: request construction (runs without vLLM) -------------------------------------------------------
def test_vllm_qwen3_request_carries_true_times() -> None:
    lm = load_model_info(tiny_qwen_dir("qwen3_vl"))
    request = _requests()[0]
    built = vllm_request(lm, request)
    assert built["prompt"].count("<|vision_start|><|video_pad|><|vision_end|>") == 1
    assert "<|video_pad|><|video_pad|>" not in built["prompt"]
    frames, meta = built["multi_modal_data"]["video"]
    assert frames.dtype == np.uint8 and frames.shape == (
        6,
        128,
        128,
        3,
    )  # resized as the transformers path does
    stamps = np.array(meta["frames_indices"]) / meta["fps"]
    assert np.allclose(stamps, request.video.timestamps)
    # what vLLM's Qwen3-VL processor derives from them (mean time per temporal patch) equals our prompt times
    derived = [(stamps[i] + stamps[i + 1]) / 2 for i in range(0, len(stamps), 2)]
    assert np.allclose(derived, patch_times(request.video.timestamps, 2))
    assert built["mm_processor_kwargs"] == {"do_resize": False, "do_sample_frames": False}
    assert meta["total_num_frames"] > max(meta["frames_indices"])


def test_vllm_qwen25_request_sets_fps_from_true_spacing() -> None:
    lm = load_model_info(tiny_qwen_dir("qwen2_5_vl"))
    request = _requests()[2]
    built = vllm_request(lm, request)
    assert built["prompt"].startswith(
        "<|im_start|>user\nquery frame: <|vision_start|><|image_pad|><|vision_end|>"
    )
    assert "Video frames at 0.5, 3.2 seconds" in built["prompt"]
    assert built["mm_processor_kwargs"]["fps"] == pytest.approx(2 / (3.25 - 0.5))
    assert isinstance(built["multi_modal_data"]["video"], np.ndarray)
    assert len(built["multi_modal_data"]["image"]) == 1
    blind = vllm_request(lm, _requests()[1])
    assert "multi_modal_data" not in blind


def test_vllm_sampling_and_outputs() -> None:
    kw = vllm_sampling_kwargs(
        SamplingParams(n=4, temperature=0, top_p=0.9, max_new_tokens=16, logprobs=True, seed=3), 2
    )
    assert kw == {
        "n": 4,
        "temperature": 0,
        "top_p": 1.0,
        "top_k": 0,
        "max_tokens": 16,
        "stop_token_ids": [2],
        "skip_special_tokens": True,
        "seed": 3,
        "logprobs": 0,
    }
    step = lambda token, lp: {token: SimpleNamespace(logprob=lp)}  # noqa: E731
    output = SimpleNamespace(
        outputs=[
            SimpleNamespace(
                text="<answer>A</answer>",
                token_ids=[5, 6],
                logprobs=[step(5, -0.5), step(6, -1.0)],
                finish_reason="stop",
            ),
            SimpleNamespace(text="x", token_ids=[7], logprobs=None, finish_reason="length"),
        ]
    )
    a, b = samples_from_output(output, eos_token_id=2)
    assert a.token_ids == [5, 6, 2] and a.logprobs == [-0.5, -1.0] and a.finish_reason == "stop"
    assert b.token_ids == [7] and b.logprobs is None and b.finish_reason == "length"
    assert video_metadata(np.array([0.0, 0.333, 1.0]))["frames_indices"] == [0, 333, 1000]


@pytest.mark.gpu
def test_vllm_matches_transformers_greedy() -> None:
    pytest.importorskip("vllm")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from videozero.models.engines.vllm_engine import VLLMEngine

    path = tiny_qwen_dir("qwen3_vl")
    params = SamplingParams(temperature=0, max_new_tokens=8)
    requests = _requests()
    ours = TransformersEngine(load_model(path, dtype="float32", device="cuda"), batch_size=4).generate(
        requests, params
    )
    theirs = VLLMEngine(path, dtype="float32", max_model_len=2048, enforce_eager=True).generate(
        requests, params
    )
    agree = sum(a[0].token_ids == b[0].token_ids for a, b in zip(ours, theirs, strict=True))
    assert agree >= len(requests) - 1


def test_sampler_draws_from_the_warped_distribution() -> None:
    from videozero.models.engines.transformers_engine import sampling_processors

    torch.manual_seed(0)
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, 3.0]]).repeat(20000, 1)
    picked = sampling_processors(SamplingParams(temperature=0.7))(None, logits.clone()).argmax(-1)
    freq = torch.bincount(picked, minlength=5).float() / len(picked)
    assert torch.allclose(freq, (logits[0] / 0.7).softmax(-1), atol=0.015)
    top2 = sampling_processors(SamplingParams(top_k=2))(None, logits.clone()).argmax(-1)
    assert set(top2.tolist()) == {0, 4}
    assert abs(float((top2 == 4).float().mean()) - float(torch.tensor([3.0, 2.0]).softmax(0)[0])) < 0.015


def test_engine_greedy_equals_plain_generate() -> None:
    lm = load_model(nano_dir())
    requests = _requests()[:2]
    batch = build_batch(lm, requests)
    tok = lm.tokenizer
    ref = lm.model.generate(
        **batch.inputs,
        max_new_tokens=12,
        do_sample=False,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
    )[:, batch.input_ids.shape[1] :]
    for share in (True, False):
        out = TransformersEngine(lm, batch_size=4, share_prefill=share).generate(
            requests, SamplingParams(n=1, temperature=0, max_new_tokens=12)
        )
        for row, group in enumerate(out):
            want = [t for t in ref[row].tolist() if t != tok.pad_token_id]
            assert group[0].token_ids == want[: len(group[0].token_ids)] and group[0].token_ids
