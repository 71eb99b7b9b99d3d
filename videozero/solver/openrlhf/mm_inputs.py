"""Guard against `token_type_ids` reaching a Qwen-VL forward in place of `mm_token_type_ids`.

Reported for OpenRLHF: for video-only input its `Actor.forward` passes `token_type_ids`, which Qwen-VL
models do not read as modality types, so the multimodal rotary positions of video tokens come out as
if they were text. Our own inputs (`models.prompt.build_batch`) always carry `mm_token_type_ids`; the
export sends frames as images, off that path. Where inputs come from elsewhere, `fix_mm_token_types`
repairs them: it derives `mm_token_type_ids` from the input ids (image placeholder 1, video placeholder
2) and drops `token_type_ids`; `guard_forward` wraps a model's forward with it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch

MM_TEXT, MM_IMAGE, MM_VIDEO = 0, 1, 2


def mm_token_types(input_ids: torch.Tensor, image_token_id: int, video_token_id: int) -> torch.Tensor:
    """0 for text, 1 for image placeholders, 2 for video placeholders.

    >>> mm_token_types(torch.tensor([[5, 7, 7, 9]]), image_token_id=9, video_token_id=7).tolist()
    [[0, 2, 2, 1]]
    """
    types = torch.zeros_like(input_ids)
    types[input_ids == image_token_id] = MM_IMAGE
    types[input_ids == video_token_id] = MM_VIDEO
    return types


def fix_mm_token_types(kwargs: dict[str, Any], image_token_id: int, video_token_id: int) -> dict[str, Any]:
    """Forward kwargs with `mm_token_type_ids` derived from `input_ids` and `token_type_ids` removed."""
    fixed = dict(kwargs)
    ids = fixed.get("input_ids")
    token_types = fixed.pop("token_type_ids", None)
    if ids is None:
        if token_types is not None and "mm_token_type_ids" not in fixed:
            fixed["mm_token_type_ids"] = token_types
        return fixed
    if "pixel_values_videos" in fixed or "pixel_values" in fixed or token_types is not None:
        fixed["mm_token_type_ids"] = mm_token_types(ids, image_token_id, video_token_id)
    return fixed


def guard_forward(model: torch.nn.Module) -> Callable:
    """Wrap `model.forward` so every call goes through `fix_mm_token_types`; returns the original."""
    config = model.config
    image_id, video_id = config.image_token_id, config.video_token_id
    original = model.forward

    @functools.wraps(original)
    def forward(*args, **kwargs):
        if args:
            kwargs = {"input_ids": args[0], **kwargs}
            args = args[1:]
        return original(*args, **fix_mm_token_types(kwargs, image_id, video_id))

    model.forward = forward
    return original
