"""One request type for every model, and the batched model inputs built from (request, completion) pairs.

A `Request` is a question with an optional video clip (frames and their true timestamps) and optional
still images (a query frame, option frames). `build_batch` renders requests in the ChatML dialect of
the model's family with the vision placeholders expanded, left-pads them, and appends completions when
given, marking which tokens are completion and which lie inside <think>, <evidence> and <answer>. The
generation engines and the trainers use the same function, so what is scored is what was sampled.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

import numpy as np
import torch

from videozero.answer_format import tag_regions
from videozero.models.qwen_video import image_patches, patch_times, seconds_per_grid, video_patches
from videozero.models.request import Request, ToolTurn
from videozero.video.inputs import VideoInput

if TYPE_CHECKING:
    from videozero.models.loader import LoadedModel

VISION_START, VISION_END = "<|vision_start|>", "<|vision_end|>"
IMAGE_PAD, VIDEO_PAD = "<|image_pad|>", "<|video_pad|>"
MM_TEXT, MM_IMAGE, MM_VIDEO = 0, 1, 2


class TokenRegion(IntEnum):
    """What a token of a batch row is, for masking losses and token-selective credit."""

    PROMPT = 0
    COMPLETION = 1
    THINK = 2
    EVIDENCE = 3
    ANSWER = 4


@dataclass
class ModelBatch:
    """Left-padded model inputs for a list of requests (and completions), ready for forward or generate."""

    inputs: dict[str, torch.Tensor]
    prompt_lengths: list[int]
    completion_mask: torch.Tensor
    regions: torch.Tensor

    @property
    def input_ids(self) -> torch.Tensor:
        return self.inputs["input_ids"]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> ModelBatch:
        moved = {}
        for key, value in self.inputs.items():
            value = value.to(device)
            if dtype is not None and value.is_floating_point() and key.startswith("pixel_values"):
                value = value.to(dtype)
            moved[key] = value
        return ModelBatch(
            moved, self.prompt_lengths, self.completion_mask.to(device), self.regions.to(device)
        )


def _format_time(seconds: float) -> str:
    """Qwen3-VL's own timestamp text, as its processor writes it."""
    return f"<{seconds:.1f} seconds>"


def _nano_video_text(times: Sequence[float], per_frame: int, words: int = 0) -> str:
    """nano's compact video: one vision group, each frame's time written as the evidence writes it, after
    the frame's visual words and before its grid cells.

    `2.3` is 3 tokens where `<2.3 seconds><|vision_start|>..<|vision_end|>` is 8, and the times read
    exactly as the spans the model must write. A frame's time follows its visual words, so a query image
    shown after the video (whose words repeat a frame's) is followed in context by that frame's time: the
    pattern a pretrained LM's copying (induction) heads complete.

    >>> _nano_video_text([0.0, 2.5], 3, words=1).replace(VIDEO_PAD, "#")
    '<|vision_start|>#0.0###2.5##<|vision_end|>'
    """
    frames = "".join(f"{VIDEO_PAD * words}{t:.1f}{VIDEO_PAD * (per_frame - words)}" for t in times)
    return f"{VISION_START}{frames}{VISION_END}"


def _render_content(lm: LoadedModel, request: Request, mm: dict[str, list], expand: bool = True) -> str:
    """The user turn's text with vision placeholders expanded; tensors are appended to `mm`.

    With `expand=False` each image and video is one `<|vision_start|><|..._pad|><|vision_end|>` group, as
    engines that expand placeholders themselves (vLLM) expect, and no tensors are made.
    """
    parts: list[str] = []
    merge = lm.vision.merge_size
    # nano with visual words: query images after the video (see `_nano_video_text`)
    video_first = lm.family == "nano" and lm.model.config.visual_words > 0
    if video_first:
        _render_video(lm, request.video, mm, expand, parts)
    recalled = _nano_recall(lm, request) if expand else [""] * len(request.images)
    for (label, image), recall in zip(request.images, recalled, strict=True):
        if not expand:
            prefix = f"{label}: " if label else ""
            parts.append(f"{prefix}{VISION_START}{IMAGE_PAD}{VISION_END}\n")
            continue
        if lm.family == "nano":
            pixels, grid = (
                lm.model.frame_pixels(np.asarray(image)[None]),
                (1, lm.model.config.frame_grid, lm.model.config.frame_grid),
            )
            mm["pixel_values"].append(pixels)
            n = lm.model.config.tokens_per_frame
        else:
            patches = image_patches(np.asarray(image), lm.vision)
            mm["pixel_values"].append(patches.pixel_values)
            grid, n = patches.grid_thw, patches.num_tokens(merge)
        mm["image_grid_thw"].append(grid)
        prefix = f"{label}: " if label else ""
        parts.append(f"{prefix}{VISION_START}{IMAGE_PAD * n}{VISION_END}{recall}\n")
    if not video_first:
        _render_video(lm, request.video, mm, expand, parts)
    parts.append(_nano_span_frames(lm, request) if expand else request.question)
    return "".join(parts)


_OPTION_LINE = re.compile(r"^([A-Z])\. (.*)$")
_SPAN = re.compile(r"from (\d+(?:\.\d+)?) s to (\d+(?:\.\d+)?) s")
_OPTION_IMAGE = re.compile(r"Option ([A-Z])")


def _uses_span_frames(lm: LoadedModel, request: Request) -> bool:
    return lm.family == "nano" and lm.model.config.span_frames and request.video is not None


def _nano_span_frames(lm: LoadedModel, request: Request) -> str:
    """nano with `span_frames`: the question with each option line that names spans followed by the
    shown frames inside them, each time keyed by the option's letter; the question as it is otherwise."""
    if not _uses_span_frames(lm, request):
        return request.question
    return span_keys(request.question, request.video.timestamps)


def span_keys(question: str, timestamps: Sequence[float]) -> str:
    """`question` with each option line's spans followed by the shown times inside them and its letter.

    >>> span_keys("When?\\nA. from 0.0 s to 4.8 s\\nB. from 4.8 s to 9.0 s", [0.0, 2.5, 5.0, 7.5])
    'When?\\nA. from 0.0 s to 4.8 s (shown 0.0 A, 2.5 A)\\nB. from 4.8 s to 9.0 s (shown 5.0 B, 7.5 B)'
    """
    shown = [f"{t:.1f}" for t in timestamps]
    lines = []
    for line in question.split("\n"):
        option = _OPTION_LINE.match(line)
        if option:
            inside = [
                t
                for m in _SPAN.finditer(option.group(2))
                for t in shown
                if float(m.group(1)) <= float(t) <= float(m.group(2))
            ]
            if inside:
                line += " (shown " + ", ".join(f"{t} {option.group(1)}" for t in dict.fromkeys(inside)) + ")"
        lines.append(line)
    return "\n".join(lines)


def _nano_recall(lm: LoadedModel, request: Request) -> list[str]:
    """nano with `frame_recall`: the text after each still image naming the shown frame it most
    resembles (`Query: <image> like 11.3`); empty strings for other models, or when no video is shown."""
    if lm.family != "nano" or not lm.model.config.frame_recall or request.video is None:
        return [""] * len(request.images)
    if not request.images:
        return []
    images = torch.cat([lm.model.frame_pixels(np.asarray(image)[None]) for _, image in request.images])
    frames = lm.model.frame_pixels(request.video.frames)
    times = lm.model.recall_times(images, frames, request.video.timestamps)
    keyed = _uses_span_frames(lm, request)
    return [
        f" like {t:.1f}" + (f" {m.group(1)}" if keyed and (m := _OPTION_IMAGE.fullmatch(label)) else "")
        for (label, _), t in zip(request.images, times, strict=True)
    ]


def _render_video(
    lm: LoadedModel, video: VideoInput | None, mm: dict[str, list], expand: bool, parts: list[str]
) -> None:
    """Append the video's text (placeholders expanded unless `expand` is false) to `parts`, its
    tensors to `mm`."""
    merge = lm.vision.merge_size
    if video is not None and not expand:
        if lm.family == "qwen3_vl":
            parts.append(f"{VISION_START}{VIDEO_PAD}{VISION_END}")
        else:
            stamps = ", ".join(
                f"{t:.1f}" for t in patch_times(video.timestamps, lm.vision.temporal_patch_size)
            )
            parts.append(f"Video frames at {stamps} seconds: {VISION_START}{VIDEO_PAD}{VISION_END}")
        parts.append("\n")
    elif video is not None:
        if lm.family == "nano":
            g = lm.model.config.frame_grid
            mm["pixel_values_videos"].append(lm.model.frame_pixels(video.frames))
            mm["video_grid_thw"].append((len(video), g, g))
            times, per_step = video.timestamps, lm.model.config.tokens_per_frame
        else:
            patches = video_patches(video.frames, video.timestamps, lm.vision)
            mm["pixel_values_videos"].append(patches.pixel_values)
            mm["video_grid_thw"].append(patches.grid_thw)
            mm["second_per_grid_ts"].append(seconds_per_grid(video.timestamps, lm.vision.temporal_patch_size))
            times, per_step = patches.patch_times, patches.num_tokens(merge) // patches.grid_thw[0]
        if lm.family == "nano":
            parts.append(_nano_video_text(times, per_step, lm.model.config.visual_words))
        elif lm.family == "qwen3_vl":
            parts.extend(f"{_format_time(t)}{VISION_START}{VIDEO_PAD * per_step}{VISION_END}" for t in times)
        else:
            stamps = ", ".join(f"{t:.1f}" for t in times)
            parts.append(
                f"Video frames at {stamps} seconds: {VISION_START}{VIDEO_PAD * per_step * len(times)}{VISION_END}"
            )
        parts.append("\n")


def render_prompt(
    lm: LoadedModel, request: Request, mm: dict[str, list] | None = None, expand: bool = True
) -> str:
    """The full ChatML prompt text of `request` for `lm`, ending where the assistant starts to write."""
    mm = mm if mm is not None else _empty_mm()
    system = f"<|im_start|>system\n{request.system}<|im_end|>\n" if request.system else ""
    content = _render_content(lm, request, mm, expand)
    turns = "".join(_render_turn(lm, turn, mm, expand) for turn in request.turns)
    return f"{system}<|im_start|>user\n{content}<|im_end|>\n{turns}<|im_start|>assistant\n"


def _render_turn(lm: LoadedModel, turn: ToolTurn, mm: dict[str, list], expand: bool) -> str:
    """An earlier turn of a multi-turn answer: the model's words, then the tool's reply as the next user
    turn (its frames, each with its time, before its text). Both lie in the prompt of the next answer, so
    the tool's tokens are never trained on."""
    parts: list[str] = []
    _render_video(lm, turn.video, mm, expand, parts)
    reply = "".join(parts) + turn.reply
    return f"<|im_start|>assistant\n{turn.said}<|im_end|>\n<|im_start|>user\n{reply}<|im_end|>\n"


def _empty_mm() -> dict[str, list]:
    return {
        "pixel_values": [],
        "image_grid_thw": [],
        "pixel_values_videos": [],
        "video_grid_thw": [],
        "second_per_grid_ts": [],
    }


def completion_regions(tokenizer, completion_ids: Sequence[int]) -> list[int]:
    """TokenRegion of each completion token, from where its text falls among the answer-format tags."""
    ids = list(completion_ids)
    if not ids:
        return []
    ends = [len(tokenizer.decode(ids[: i + 1], skip_special_tokens=False)) for i in range(len(ids))]
    text = tokenizer.decode(ids, skip_special_tokens=False)
    regions = [int(TokenRegion.COMPLETION)] * len(ids)
    code = {"think": TokenRegion.THINK, "evidence": TokenRegion.EVIDENCE, "answer": TokenRegion.ANSWER}
    for name, start, end in tag_regions(text):
        begin = 0
        for i, token_end in enumerate(ends):
            token_start = begin
            begin = token_end
            if token_end > start and token_start < end:
                regions[i] = int(code[name])
    return regions


def build_batch(
    lm: LoadedModel,
    requests: Sequence[Request],
    completions: Sequence[str | Sequence[int] | None] | None = None,
    add_eos: bool = True,
) -> ModelBatch:
    """Batched, left-padded inputs for (request, optional completion) pairs.

    A completion given as text is tokenized and, with `add_eos`, closed by the end-of-turn token; one given
    as token ids (sampled by an engine) is used as is. `completion_mask` marks completion tokens and
    `regions` labels them (TokenRegion).
    """
    tok = lm.tokenizer
    if completions is not None and len(completions) != len(requests):
        raise ValueError(f"{len(requests)} requests but {len(completions)} completions")
    mm = _empty_mm()
    rows: list[list[int]] = []
    prompt_lengths: list[int] = []
    row_regions: list[list[int]] = []
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    rendered: dict[
        int, tuple[list[int], dict[str, list]]
    ] = {}  # a request repeated (n samples) is rendered once
    for i, request in enumerate(requests):
        if id(request) not in rendered:
            own = _empty_mm()
            rendered[id(request)] = (
                tok(render_prompt(lm, request, own), add_special_tokens=False)["input_ids"],
                own,
            )
        prompt_ids, own = rendered[id(request)]
        for key, values in own.items():
            mm[key].extend(values)
        completion = completions[i] if completions is not None else None
        if completion is None:
            completion_ids: list[int] = []
        elif isinstance(completion, str):
            completion_ids = tok(completion, add_special_tokens=False)["input_ids"] + (
                [eos] if add_eos else []
            )
        else:
            completion_ids = [int(t) for t in completion]
        rows.append(prompt_ids + completion_ids)
        prompt_lengths.append(len(prompt_ids))
        row_regions.append(
            [int(TokenRegion.PROMPT)] * len(prompt_ids) + completion_regions(tok, completion_ids)
        )
    width = max(len(r) for r in rows)
    pad = tok.pad_token_id if tok.pad_token_id is not None else eos
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    regions = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row, reg) in enumerate(zip(rows, row_regions, strict=True)):
        input_ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        attention[i, width - len(row) :] = 1
        regions[i, width - len(row) :] = torch.tensor(reg, dtype=torch.long)
    image_id, video_id = tok.convert_tokens_to_ids([IMAGE_PAD, VIDEO_PAD])
    mm_types = torch.zeros_like(input_ids)
    mm_types[input_ids == image_id] = MM_IMAGE
    mm_types[input_ids == video_id] = MM_VIDEO
    inputs: dict[str, torch.Tensor] = {
        "input_ids": input_ids,
        "attention_mask": attention,
        "mm_token_type_ids": mm_types,
    }
    if mm["pixel_values"]:
        inputs["pixel_values"] = torch.cat(mm["pixel_values"])
        inputs["image_grid_thw"] = torch.tensor(mm["image_grid_thw"], dtype=torch.long)
    if mm["pixel_values_videos"]:
        inputs["pixel_values_videos"] = torch.cat(mm["pixel_values_videos"])
        inputs["video_grid_thw"] = torch.tensor(mm["video_grid_thw"], dtype=torch.long)
        if lm.family == "qwen2_5_vl":
            inputs["second_per_grid_ts"] = torch.tensor(mm["second_per_grid_ts"], dtype=torch.float32)
    return ModelBatch(inputs, prompt_lengths, regions > int(TokenRegion.PROMPT), regions)


def token_logprobs(model: torch.nn.Module, batch: ModelBatch) -> torch.Tensor:
    """Log-probability of every completion token under `model` ([B, L], zero elsewhere), with gradients.

    Only the logits of the trailing completion positions are computed (batches are left-padded, so
    completions end every row).
    """
    mask = batch.completion_mask
    width = mask.shape[1]
    if not bool(mask.any()):
        return torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    first = int(mask.float().argmax(dim=1)[mask.any(dim=1)].min())
    keep = width - first + 1
    inputs = {k: v for k, v in batch.inputs.items()}
    logits = model(**inputs, logits_to_keep=keep, use_cache=False).logits.float()
    # logits[:, j] predicts token at position width - keep + j + 1
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    targets = batch.input_ids[:, width - keep + 1 :]
    picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    out = torch.zeros(mask.shape, dtype=picked.dtype, device=picked.device)
    out[:, width - keep + 1 :] = picked
    return out * mask
