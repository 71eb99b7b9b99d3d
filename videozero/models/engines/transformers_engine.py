"""Generation batched with left padding: CPU and one GPU.

Where the model allows it (nano; see `videozero.models.shared_prompt`) the N samples of one prompt share
its prefill: whole prompts go into a batch, their cache is repeated N times and `cached_decode`
continues from it, dropping each row from the batch as it finishes. Other models (Qwen-VL) run
transformers' `generate`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from videozero.models.engines.base import GenerationEngine, Sample, SamplingParams
from videozero.models.engines.cached_decode import decode_from_cache
from videozero.models.loader import LoadedModel, load_model
from videozero.models.nano.frame_cache import cache_frame_cells
from videozero.models.prompt import Request, build_batch
from videozero.models.shared_prompt import prefix_cache, shares_prompts


class InverseCdfSampler(LogitsProcessor):
    """Draws one token per row from softmax(scores) by inverse CDF and leaves only it for greedy search.

    Exact categorical sampling; it replaces `torch.multinomial`, which on CPU takes about 24 ms per step
    for 32 rows over a 49k vocabulary (this takes under 1 ms) and dominated batched generation.
    """

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        cdf = scores.float().softmax(-1).cumsum(-1)
        u = torch.rand(cdf.shape[0], 1, device=cdf.device) * cdf[:, -1:]
        picked = torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[-1] - 1)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, picked, 0.0)


def _prompt_size(request: Request) -> tuple[int, int, int]:
    """A cheap stand-in for a prompt's token count, to order prompts by: frames, images, characters."""
    return (
        (len(request.video) if request.video is not None else 0)
        + sum(len(t.video) for t in request.turns if t.video is not None),
        len(request.images),
        len(request.question),
    )


def sampling_processors(params: SamplingParams) -> LogitsProcessorList:
    """Temperature, top-k, top-p, then the sampler: what `do_sample=True` does, with a faster draw."""
    processors = LogitsProcessorList([TemperatureLogitsWarper(params.temperature)])
    if params.top_k:
        processors.append(TopKLogitsWarper(params.top_k))
    if params.top_p < 1.0:
        processors.append(TopPLogitsWarper(params.top_p))
    processors.append(InverseCdfSampler())
    return processors


class TransformersEngine(GenerationEngine):
    """Generates on batches of up to `batch_size` sequences (each sample is one sequence) holding up to
    `max_prompts` distinct prompts: nano from each prompt's shared prefill with `cached_decode`, other
    models with `lm.model.generate`; `share_prefill=False` makes every sample prefill its own copy of the
    prompt with `generate` (for comparison).

    The two limits are apart because the two phases cost differently on a CPU: decoding is bound by
    reading the weights once per step, so more rows per step are nearly free (nano, 8 prompts x 8
    samples: 27.0 s at 16 rows a batch, 17.1 s at 64), while a prefill's activations grow with its
    prompts' tokens, so the prompts run at once stay few."""

    def __init__(
        self, lm: LoadedModel, batch_size: int = 64, share_prefill: bool = True, max_prompts: int = 16
    ) -> None:
        if batch_size < 1 or max_prompts < 1:
            raise ValueError("batch_size and max_prompts must be at least 1")
        self.lm = lm
        self.batch_size = batch_size
        self.max_prompts = max_prompts
        self.share_prefill = share_prefill
        # nano's frozen frame encoder would otherwise re-encode a prompt's frames once per sample.
        cache_frame_cells(lm.model)

    @property
    def shares_prefill(self) -> bool:
        """Whether the N samples of a prompt reuse one prefill (nano; not Qwen-VL's 3-D rope positions)."""
        return self.share_prefill and shares_prompts(self.lm)

    @torch.no_grad()
    def generate(self, requests: Sequence[Request], params: SamplingParams) -> list[list[Sample]]:
        out: list[list[Sample]] = [[] for _ in requests]
        if params.seed is not None:
            torch.manual_seed(params.seed)
        model = self.lm.model
        was_training = model.training
        model.eval()
        try:
            if self.shares_prefill:
                # whole prompts per batch, as many as fit `batch_size` sequences (at least one)
                per_batch = max(1, min(self.max_prompts, self.batch_size // params.n))
                order = sorted(range(len(requests)), key=lambda i: _prompt_size(requests[i]), reverse=True)
                for start in range(0, len(order), per_batch):
                    rows = order[start : start + per_batch]
                    samples = self._decode_batch([requests[i] for i in rows], params)
                    for k, i in enumerate(rows):
                        out[i] = samples[k * params.n : (k + 1) * params.n]
            else:
                # every sequence prefills its own prompt here; prompts of about the same length share a
                # batch, so that few positions are left padding (a blind probe beside a whole video
                # would be padded to the video's length)
                flat = [(i, request) for i, request in enumerate(requests) for _ in range(params.n)]
                flat.sort(key=lambda pair: _prompt_size(pair[1]), reverse=True)
                rows = min(self.batch_size, self.max_prompts)
                for start in range(0, len(flat), rows):
                    chunk = flat[start : start + rows]
                    for (i, _), sample in zip(
                        chunk, self._generate_batch([r for _, r in chunk], params), strict=True
                    ):
                        out[i].append(sample)
        finally:
            model.train(was_training)
        return out

    def _decode_batch(self, requests: list[Request], params: SamplingParams) -> list[Sample]:
        """`params.n` samples of each request, in a row: each prompt is prefilled once, its cache repeated
        `params.n` times, and the rows decoded until each finishes."""
        lm, tok = self.lm, self.lm.tokenizer
        batch = build_batch(lm, requests).to(lm.device, lm.dtype)
        cache = prefix_cache(lm.model, batch.inputs)
        if params.n > 1:
            cache.batch_repeat_interleave(params.n)
        decoded = decode_from_cache(
            lm.model,
            cache,
            batch.inputs["input_ids"].repeat_interleave(params.n, dim=0),
            batch.inputs["attention_mask"].repeat_interleave(params.n, dim=0),
            max_new_tokens=params.max_new_tokens,
            eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
            processors=sampling_processors(params) if params.temperature > 0 else None,
            logprobs=params.logprobs,
            stop=params.stop,
            tokenizer=tok,
        )
        return [
            Sample(
                tok.decode(d.token_ids, skip_special_tokens=True), d.token_ids, d.logprobs, d.finish_reason
            )
            for d in decoded
        ]

    def _generate_batch(self, requests: list[Request], params: SamplingParams) -> list[Sample]:
        """One sample of each request, with transformers' `generate` (every row prefills its prompt)."""
        lm, tok = self.lm, self.lm.tokenizer
        batch = build_batch(lm, requests).to(lm.device, lm.dtype)
        inputs = batch.inputs
        prompt_width = batch.input_ids.shape[1]
        eos = tok.convert_tokens_to_ids("<|im_end|>")
        # sampling runs as greedy search over scores the sampler leaves one finite entry in
        kwargs = {
            "max_new_tokens": params.max_new_tokens,
            "do_sample": False,
            "temperature": None,
            "top_p": None,
            "top_k": None,
            "repetition_penalty": 1.0,
            "eos_token_id": eos,
            "pad_token_id": tok.pad_token_id,
            "return_dict_in_generate": True,
            "output_logits": params.logprobs,
        }
        if params.temperature > 0:
            kwargs["logits_processor"] = sampling_processors(params)
        if params.stop:  # a row that writes one is padded from there on (stripped below)
            kwargs.update(stop_strings=list(params.stop), tokenizer=tok)
        result = lm.model.generate(**inputs, **kwargs)
        new = result.sequences[:, prompt_width:].cpu()
        logp = None
        if params.logprobs:
            logits = torch.stack(result.logits, dim=1).float()
            logp = (
                torch.log_softmax(logits, dim=-1)
                .gather(-1, new.to(logits.device).unsqueeze(-1))
                .squeeze(-1)
                .cpu()
            )
        samples = []
        for row in range(new.shape[0]):
            ids = new[row].tolist()
            finish = "length"
            if eos in ids:
                ids = ids[: ids.index(eos) + 1]
                finish = "stop"
            elif params.stop:
                while ids and ids[-1] == tok.pad_token_id:
                    ids.pop()
            text = tok.decode(ids, skip_special_tokens=True)
            if params.stop and any(text.endswith(s) for s in params.stop):
                finish = "stop"
            samples.append(
                Sample(text, ids, logp[row, : len(ids)].tolist() if logp is not None else None, finish)
            )
        return samples


def load_engine(path: str, device: str = "auto") -> TransformersEngine:
    """A generation engine over the model at `path` (a local directory or a hub id)."""
    return TransformersEngine(load_model(path, device=device))
