"""Generation with vLLM (optional `gpu` extra, imported only when an engine is made).

Requests become vLLM prompt dicts: the same ChatML text as the transformers engine with one placeholder
group per image / video, frames pre-resized to the size the transformers path uses, and the frames'
true times passed as metadata. Qwen3-VL derives each frame's time as `frames_indices / fps`: giving it a
millisecond clock (fps 1000, indices = round(t * 1000)) makes those times the true ones. Qwen2.5-VL
takes one `fps`, set so that its `second_per_grid_ts` equals the true mean spacing of temporal patches.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from videozero.errors import VideozeroError
from videozero.models.engines.base import GenerationEngine, Sample, SamplingParams
from videozero.models.loader import LoadedModel, load_model_info
from videozero.models.prompt import Request, render_prompt
from videozero.models.qwen_video import seconds_per_grid, smart_resize, to_float_frames

TICKS_PER_SECOND = 1000.0


def _resized(frames: np.ndarray, lm: LoadedModel, max_pixels: int) -> np.ndarray:
    spec = lm.vision
    size = smart_resize(frames.shape[1], frames.shape[2], spec.factor, spec.min_pixels, max_pixels)
    return to_float_frames(frames, size).permute(0, 2, 3, 1).round().to(torch.uint8).numpy()


def video_metadata(timestamps: np.ndarray) -> dict[str, Any]:
    """Qwen3-VL video metadata whose `frames_indices / fps` are the frames' true times (to the millisecond).

    >>> video_metadata(np.array([0.0, 0.5, 1.25]))["frames_indices"]
    [0, 500, 1250]
    """
    indices = [round(float(t) * TICKS_PER_SECOND) for t in timestamps]
    return {
        "fps": TICKS_PER_SECOND,
        "frames_indices": indices,
        "total_num_frames": indices[-1] + 1,
        "duration": (indices[-1] + 1) / TICKS_PER_SECOND,
        "video_backend": "videozero",
        "do_sample_frames": False,
    }


def vllm_request(lm: LoadedModel, request: Request) -> dict[str, Any]:
    """The vLLM prompt dict (`prompt`, `multi_modal_data`, `mm_processor_kwargs`) of one request."""
    if lm.family not in ("qwen3_vl", "qwen2_5_vl"):
        raise VideozeroError(
            f"vLLM serves Qwen-VL models only; {lm.source} is {lm.family}: use the transformers engine."
        )
    prompt = render_prompt(lm, request, expand=False)
    data: dict[str, Any] = {}
    kwargs: dict[str, Any] = {"do_resize": False}
    if request.images:
        from PIL import Image

        data["image"] = [
            Image.fromarray(_resized(np.asarray(img)[None], lm, lm.vision.max_pixels)[0])
            for _, img in request.images
        ]
    videos = [v for v in (request.video, *(t.video for t in request.turns)) if v is not None]
    entries, rates = [], []
    for video in videos:  # the overview, then each zoom's frames, in the order the prompt shows them
        frames = _resized(video.frames, lm, lm.vision.video_max_pixels)
        if lm.family == "qwen3_vl":
            entries.append((frames, video_metadata(video.timestamps)))
        else:
            entries.append(frames)
            rates.append(
                lm.vision.temporal_patch_size
                / seconds_per_grid(video.timestamps, lm.vision.temporal_patch_size)
            )
    if entries:
        data["video"] = entries[0] if len(entries) == 1 else entries
        if lm.family == "qwen3_vl":
            kwargs["do_sample_frames"] = False
        else:
            kwargs["fps"] = rates[0] if len(rates) == 1 else rates
    out: dict[str, Any] = {"prompt": prompt}
    if data:
        out["multi_modal_data"] = data
        out["mm_processor_kwargs"] = kwargs
    return out


def vllm_sampling_kwargs(params: SamplingParams, eos_token_id: int) -> dict[str, Any]:
    """Arguments of `vllm.SamplingParams` equivalent to `params` (log-probs of the sampled token only)."""
    kwargs: dict[str, Any] = {
        "n": params.n,
        "temperature": params.temperature,
        "top_p": params.top_p if params.temperature > 0 else 1.0,
        "top_k": params.top_k if params.temperature > 0 else 0,
        "max_tokens": params.max_new_tokens,
        "stop_token_ids": [eos_token_id],
        "skip_special_tokens": True,
    }
    if params.stop:
        kwargs["stop"] = list(params.stop)
        kwargs["include_stop_str_in_output"] = True
    if params.seed is not None:
        kwargs["seed"] = params.seed
    if params.logprobs:
        kwargs["logprobs"] = 0
    return kwargs


def samples_from_output(output: Any, eos_token_id: int) -> list[Sample]:
    """`Sample`s from one vLLM `RequestOutput` (the end-of-turn token is appended when generation stopped on
    it; a completion ended by a stop string keeps the ids it wrote, as the transformers engine's do)."""
    samples = []
    for completion in output.outputs:
        ids = list(completion.token_ids)
        logprobs = None
        if completion.logprobs is not None:
            logprobs = [
                float(step[token].logprob) for step, token in zip(completion.logprobs, ids, strict=False)
            ]
        finish = "stop" if completion.finish_reason == "stop" else "length"
        by_string = isinstance(getattr(completion, "stop_reason", None), str)
        if finish == "stop" and not by_string and (not ids or ids[-1] != eos_token_id):
            ids.append(eos_token_id)
        samples.append(Sample(completion.text, ids, logprobs, finish))
    return samples


class VLLMEngine(GenerationEngine):
    """vLLM's offline `LLM.generate` over a Qwen-VL checkpoint (hub id or directory)."""

    def __init__(
        self,
        id_or_dir: str | Path,
        dtype: str = "auto",
        max_model_len: int = 8192,
        gpu_memory_utilization: float = 0.6,
        max_images: int = 4,
        max_videos: int = 6,
        seed: int = 0,
        **llm_kwargs: Any,
    ) -> None:
        try:
            from vllm import LLM
        except ImportError:
            raise VideozeroError(
                "vLLM is not installed; install the gpu extra (`pip install videozero[gpu]`) "
                "on a machine with a CUDA GPU, or use the transformers engine."
            ) from None
        self.lm = load_model_info(id_or_dir)
        if self.lm.family not in ("qwen3_vl", "qwen2_5_vl"):
            raise VideozeroError(f"vLLM serves Qwen-VL models only; {id_or_dir} is {self.lm.family}.")
        self.eos = self.lm.tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.llm = LLM(
            model=str(id_or_dir),
            dtype=dtype,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            limit_mm_per_prompt={"video": max_videos, "image": max_images},
            seed=seed,
            **llm_kwargs,
        )

    def generate(self, requests: Sequence[Request], params: SamplingParams) -> list[list[Sample]]:
        from vllm import SamplingParams as VllmSamplingParams

        prompts = [vllm_request(self.lm, r) for r in requests]
        outputs = self.llm.generate(
            prompts, VllmSamplingParams(**vllm_sampling_kwargs(params, self.eos)), use_tqdm=False
        )
        return [samples_from_output(o, self.eos) for o in outputs]
