"""Torch video input for Qwen-VL: the processor's layout patch for patch, and true timestamps in prompts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from tests.model_builds import noise_frames, tiny_qwen_dir
from videozero.models.qwen_video import (
    HALF,
    VisionSpec,
    image_patches,
    patch_times,
    seconds_per_grid,
    video_patches,
)

QWEN25 = VisionSpec()
QWEN3 = VisionSpec(
    patch_size=16,
    image_mean=HALF,
    image_std=HALF,
    min_pixels=32 * 32,
    max_pixels=32 * 32 * 256,
    video_max_pixels=32 * 32 * 256,
)


def _processor(spec: VisionSpec) -> Qwen2VLImageProcessorPil:
    # transformers' own image processor (its PIL path: the default one needs torchvision)
    return Qwen2VLImageProcessorPil(
        patch_size=spec.patch_size,
        temporal_patch_size=spec.temporal_patch_size,
        merge_size=spec.merge_size,
        image_mean=list(spec.image_mean),
        image_std=list(spec.image_std),
        min_pixels=spec.min_pixels,
        max_pixels=spec.max_pixels,
    )


@pytest.mark.parametrize("spec", [QWEN25, QWEN3], ids=["qwen2.5-vl", "qwen3-vl"])
@pytest.mark.parametrize("size", [(112, 168), (100, 150), (360, 640)])
def test_images_equal_the_processor_patch_for_patch(spec: VisionSpec, size: tuple[int, int]) -> None:
    image = noise_frames(1, size, seed=size[0])[0]
    expected = _processor(spec)(images=[image], return_tensors="pt")
    mine = image_patches(image, spec)
    assert tuple(expected["image_grid_thw"][0].tolist()) == mine.grid_thw
    assert mine.pixel_values.shape == expected["pixel_values"].shape
    assert torch.equal(mine.pixel_values, expected["pixel_values"].float())


@pytest.mark.parametrize("spec", [QWEN25, QWEN3], ids=["qwen2.5-vl", "qwen3-vl"])
def test_video_patches_hold_each_frame_as_the_processor_cuts_it(spec: VisionSpec) -> None:
    """Row r of temporal patch k holds frame 2k in its first temporal half and frame 2k+1 in its second,
    each exactly the processor's patch of that frame (the processor repeats a still image over both)."""
    frames = noise_frames(5, (112, 140), seed=3)
    video = video_patches(frames, np.arange(5) * 0.5, spec)
    proc = _processor(spec).__class__(**{**_processor(spec).to_dict(), "max_pixels": spec.video_max_pixels})
    per_frame = [proc(images=[f], return_tensors="pt")["pixel_values"].float() for f in frames]
    t, h, w = video.grid_thw
    assert t == 3 and video.pixel_values.shape[0] == t * h * w
    c, tp, p = 3, spec.temporal_patch_size, spec.patch_size
    rows = video.pixel_values.view(t, h * w, c, tp, p, p)
    for k in range(t):
        for half in range(tp):
            frame = min(2 * k + half, len(frames) - 1)  # an odd count repeats the last frame
            ref = per_frame[frame].view(h * w, c, tp, p, p)[:, :, 0]
            assert torch.equal(rows[k, :, :, half], ref)


def test_irregular_frames_keep_their_true_times() -> None:
    times = np.array([0.0, 0.4, 2.0, 2.6, 7.1, 7.3, 9.0])
    assert patch_times(times, 2).tolist() == pytest.approx([0.2, 2.3, 7.2, 9.0])
    assert seconds_per_grid(times, 2) == pytest.approx((9.0 - 0.2) / 3)
    assert seconds_per_grid(np.array([3.0]), 2) == 1.0


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_prompt_carries_the_true_times_of_irregular_frames(family: str) -> None:
    from videozero.models.loader import load_model
    from videozero.models.prompt import Request, VideoInput, build_batch

    lm = load_model(tiny_qwen_dir(family))
    times = np.array([0.0, 0.4, 2.0, 2.6, 7.1, 7.3])
    batch = build_batch(lm, [Request("When?", VideoInput(noise_frames(6), times))])
    text = lm.tokenizer.decode(batch.input_ids[0])
    if family == "qwen3_vl":
        assert [s for s in ("<0.2 seconds>", "<2.3 seconds>", "<7.2 seconds>") if s in text] == [
            "<0.2 seconds>",
            "<2.3 seconds>",
            "<7.2 seconds>",
        ]
        assert text.count("<|vision_start|>") == 3
    else:
        assert "Video frames at 0.2, 2.3, 7.2 seconds" in text
        assert batch.inputs["second_per_grid_ts"].tolist() == pytest.approx([3.5])
    assert (
        int((batch.inputs["mm_token_type_ids"] == 2).sum())
        == batch.inputs["video_grid_thw"].prod(-1).sum() // 4
    )
