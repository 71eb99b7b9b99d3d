"""Per-frame features the miner scores evidence with: EfficientNet-Lite0 pooled vectors, top ImageNet
labels, and motion energy from frame differences. Cached per (content hash, sampling) on disk."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from videozero.video.cache import VideoCache
from videozero.video.decode import SamplingConfig, VideoClip
from videozero.video.frame_encoder import frame_encoder, imagenet_classes

# The encoder's input side in pixels: 128 keeps the 1280-d features informative while running at
# about 240 frames/s on 2 cores (224 px: about 30 frames/s), so features cost less than decoding.
ENCODER_SIZE = 128
TOP_K = 5
MOTION_SIDE = 64
FEATURES_VERSION = 1


@dataclass
class FrameFeatures:
    """Features of every sampled frame of one video, aligned with its timestamps.

    `pooled` float32 [T, 1280] L2-normalised; `label_ids`/`label_probs` [T, k] top ImageNet classes;
    `motion` float32 [T] mean absolute difference to the previous sampled frame in [0, 1] (0 for the
    first frame).
    """

    timestamps: np.ndarray
    pooled: np.ndarray
    label_ids: np.ndarray
    label_probs: np.ndarray
    motion: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamps)

    def labels(self, i: int) -> list[tuple[str, float]]:
        """Top ImageNet (name, probability) of frame `i`."""
        names = imagenet_classes()
        return [
            (names[int(j)], round(float(p), 4))
            for j, p in zip(self.label_ids[i], self.label_probs[i], strict=True)
        ]

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "version": np.array(FEATURES_VERSION),
            "timestamps": self.timestamps,
            "pooled": self.pooled,
            "label_ids": self.label_ids,
            "label_probs": self.label_probs,
            "motion": self.motion,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> FrameFeatures | None:
        if int(arrays.get("version", -1)) != FEATURES_VERSION:
            return None
        try:
            return cls(*(arrays[k] for k in ("timestamps", "pooled", "label_ids", "label_probs", "motion")))
        except KeyError:
            return None


def motion_energy(frames: np.ndarray) -> np.ndarray:
    """Mean absolute grey-level difference between consecutive frames at a small size, in [0, 1].

    >>> f = np.zeros((3, 8, 8, 3), np.uint8); f[2] = 255
    >>> motion_energy(f).tolist()
    [0.0, 0.0, 1.0]
    """
    if len(frames) == 0:
        return np.zeros(0, np.float32)
    x = torch.as_tensor(frames).float().mean(-1)[:, None]  # [T, 1, H, W] grey
    h, w = x.shape[-2:]
    scale = min(1.0, MOTION_SIDE / min(h, w))
    if scale < 1.0:
        x = F.interpolate(x, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="area")
    diff = (x[1:] - x[:-1]).abs().mean((1, 2, 3)) / 255.0
    return np.concatenate([[0.0], diff.numpy()]).astype(np.float32)


def compute_features(clip: VideoClip) -> FrameFeatures:
    """Run the frozen frame encoder and the motion measure over a clip's sampled frames."""
    pooled, logits = frame_encoder().pooled_and_logits(clip.frames, ENCODER_SIZE)
    probs, ids = logits.softmax(-1).topk(min(TOP_K, logits.shape[-1]) if len(logits) else TOP_K, dim=-1)
    return FrameFeatures(
        timestamps=np.asarray(clip.timestamps, np.float64),
        pooled=F.normalize(pooled, dim=-1).numpy().astype(np.float32),
        label_ids=ids.numpy().astype(np.int16),
        label_probs=probs.numpy().astype(np.float32),
        motion=motion_energy(clip.frames),
    )


def cached_features(
    clip: VideoClip, content_hash: str, sampling: SamplingConfig, cache: VideoCache | None
) -> tuple[FrameFeatures, bool]:
    """Features of a clip, computed once per (content, sampling); returns (features, from cache)."""
    name = f"features-e{ENCODER_SIZE}"
    if cache is not None:
        arrays = cache.load(content_hash, sampling, name)
        feats = FrameFeatures.from_arrays(arrays) if arrays is not None else None
        if feats is not None and len(feats) == len(clip):
            return feats, True
    feats = compute_features(clip)
    if cache is not None:
        cache.save(content_hash, sampling, name, feats.arrays())
    return feats, False
