"""Qwen-VL vision input in torch: frames -> `pixel_values_videos` / `video_grid_thw`, images -> `pixel_values`.

The layout is the one transformers' Qwen2-VL / Qwen2.5-VL / Qwen3-VL processors produce (their video
processors need torchvision, which this project cannot install): per temporal patch of
`temporal_patch_size` frames, patches ordered by merge block (row, column), then within the block, each
flattened as (channel, time, y, x). Times the model sees are the frames' true timestamps.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class VisionSpec:
    """How one model family cuts pixels into patches and how many pixels a frame may keep."""

    patch_size: int = 14
    temporal_patch_size: int = 2
    merge_size: int = 2
    image_mean: tuple[float, ...] = OPENAI_CLIP_MEAN
    image_std: tuple[float, ...] = OPENAI_CLIP_STD
    min_pixels: int = 56 * 56
    max_pixels: int = 28 * 28 * 256
    video_max_pixels: int = 28 * 28 * 128
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    @classmethod
    def for_config(cls, config, model_dir: str | Path | None = None) -> VisionSpec:
        """The spec of a Qwen-VL config, with sizes and normalisation from the checkpoint's processor files."""
        vision = config.vision_config
        qwen3 = config.model_type.startswith("qwen3")
        spec = {
            "patch_size": int(vision.patch_size),
            "temporal_patch_size": int(vision.temporal_patch_size),
            "merge_size": int(vision.spatial_merge_size),
            "image_mean": HALF if qwen3 else OPENAI_CLIP_MEAN,
            "image_std": HALF if qwen3 else OPENAI_CLIP_STD,
        }
        factor = spec["patch_size"] * spec["merge_size"]
        spec["min_pixels"] = factor * factor
        spec["max_pixels"] = factor * factor * 256
        spec["video_max_pixels"] = factor * factor * 128
        if model_dir is not None:
            spec.update(_processor_overrides(Path(model_dir)))
        return cls(**spec)


def _processor_overrides(model_dir: Path) -> dict:
    """Normalisation and image pixel bounds from a checkpoint's preprocessor_config.json, where present.

    The video processor's bounds are a budget for the whole clip; frames here are already sampled and
    sized by the decoder, so the per-frame video bound stays the spec's.
    """
    path = model_dir / "preprocessor_config.json"
    try:
        cfg = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        cfg = {}
    out: dict = {}
    if "image_mean" in cfg and "image_std" in cfg:
        out["image_mean"], out["image_std"] = tuple(cfg["image_mean"]), tuple(cfg["image_std"])
    size = cfg.get("size") or {}
    if cfg.get("max_pixels") or size.get("longest_edge"):
        out["max_pixels"] = int(cfg.get("max_pixels") or size["longest_edge"])
    if cfg.get("min_pixels") or size.get("shortest_edge"):
        out["min_pixels"] = int(cfg.get("min_pixels") or size["shortest_edge"])
    return out


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """(height, width) divisible by `factor`, pixel count within bounds, aspect ratio kept (Qwen's rule).

    >>> smart_resize(112, 112, 28, 56 * 56, 28 * 28 * 256)
    (112, 112)
    >>> smart_resize(360, 640, 28, 56 * 56, 28 * 28 * 64)
    (168, 280)
    """
    height, width = max(height, 1), max(width, 1)
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def to_float_frames(frames: np.ndarray | torch.Tensor, size: tuple[int, int] | None) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> float [T, 3, h, w] in 0..255, resized to `size` (height, width) if needed.

    The resize is PIL's bicubic filter on 8-bit frames, as in the Qwen image processor, so that a frame
    fed as video and as an image gives the same pixels.
    """
    array = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if size is not None and tuple(array.shape[1:3]) != tuple(size):
        from PIL import Image

        array = np.stack(
            [
                np.asarray(Image.fromarray(f).resize((size[1], size[0]), Image.Resampling.BICUBIC))
                for f in array
            ]
        )
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).float()


def patchify(pixels: torch.Tensor, spec: VisionSpec) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """Normalised float [T, C, H, W] -> flat patches [grid_t * grid_h * grid_w, C * tp * p * p] and the grid.

    T is padded to a multiple of the temporal patch size by repeating the last frame (a still image is
    one frame repeated), exactly as the Qwen processors do.
    """
    p, m, tp = spec.patch_size, spec.merge_size, spec.temporal_patch_size
    t, c, h, w = pixels.shape
    if pad := -t % tp:
        pixels = torch.cat([pixels, pixels[-1:].expand(pad, -1, -1, -1)], dim=0)
        t += pad
    gt, gh, gw = t // tp, h // p, w // p
    x = pixels.reshape(gt, tp, c, gh // m, m, p, gw // m, m, p)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(gt * gh * gw, c * tp * p * p), (gt, gh, gw)


def normalise(pixels: torch.Tensor, spec: VisionSpec) -> torch.Tensor:
    """0..255 float [T, 3, H, W] -> rescaled to 0..1 and normalised with the spec's mean and std."""
    mean = torch.tensor(spec.image_mean, dtype=pixels.dtype).view(1, -1, 1, 1)
    std = torch.tensor(spec.image_std, dtype=pixels.dtype).view(1, -1, 1, 1)
    return (pixels / 255.0 - mean) / std


@dataclass
class VisionPatches:
    """Flat patches of one video or image, its (t, h, w) grid, and the true time of each temporal patch."""

    pixel_values: torch.Tensor
    grid_thw: tuple[int, int, int]
    patch_times: np.ndarray

    def num_tokens(self, merge_size: int) -> int:
        t, h, w = self.grid_thw
        return t * h * w // (merge_size * merge_size)


def patch_times(timestamps: np.ndarray, temporal_patch_size: int) -> np.ndarray:
    """The time of each temporal patch: the mean of its first and last frame's true times.

    >>> patch_times(np.array([0.0, 0.5, 2.0, 2.5, 7.0]), 2).tolist()
    [0.25, 2.25, 7.0]
    """
    ts = np.asarray(timestamps, dtype=np.float64)
    if len(ts) == 0:
        return ts
    if pad := -len(ts) % temporal_patch_size:
        ts = np.concatenate([ts, np.repeat(ts[-1:], pad)])
    groups = ts.reshape(-1, temporal_patch_size)
    return (groups[:, 0] + groups[:, -1]) / 2


def seconds_per_grid(timestamps: np.ndarray, temporal_patch_size: int) -> float:
    """Qwen2.5-VL's `second_per_grid_ts` from true times: the mean time between temporal patches.

    >>> seconds_per_grid(np.array([0.0, 0.5, 1.0, 1.5]), 2)
    1.0
    """
    times = patch_times(timestamps, temporal_patch_size)
    if len(times) >= 2:
        return float((times[-1] - times[0]) / (len(times) - 1))
    ts = np.asarray(timestamps, dtype=np.float64)
    if len(ts) >= 2:
        return float((ts[-1] - ts[0]) / (len(ts) - 1) * temporal_patch_size)
    return 1.0


def video_patches(
    frames: np.ndarray | torch.Tensor, timestamps: np.ndarray, spec: VisionSpec
) -> VisionPatches:
    """`pixel_values_videos` rows and `video_grid_thw` of one clip, with each temporal patch's true time."""
    frames_t = torch.as_tensor(frames)
    h, w = int(frames_t.shape[1]), int(frames_t.shape[2])
    size = smart_resize(h, w, spec.factor, spec.min_pixels, spec.video_max_pixels)
    pixels = normalise(to_float_frames(frames_t, size), spec)
    values, grid = patchify(pixels, spec)
    return VisionPatches(values, grid, patch_times(timestamps, spec.temporal_patch_size))


def image_patches(image: np.ndarray | torch.Tensor, spec: VisionSpec) -> VisionPatches:
    """`pixel_values` rows and `image_grid_thw` of one still image (uint8 [H, W, 3])."""
    image_t = torch.as_tensor(image)[None]
    size = smart_resize(
        int(image_t.shape[1]), int(image_t.shape[2]), spec.factor, spec.min_pixels, spec.max_pixels
    )
    pixels = normalise(to_float_frames(image_t, size), spec)
    values, grid = patchify(pixels, spec)
    return VisionPatches(values, grid, np.zeros(1))
