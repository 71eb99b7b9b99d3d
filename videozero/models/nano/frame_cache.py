"""Memoised frozen frame features for nano: a group of N rollouts on one clip encodes its frames once.

nano's frame encoder is frozen and deterministic, yet every forward (each of the N samples of a group,
generation prefill, training forward, reference forward) would re-run it on the same frames: on two CPU
cores that costs more than the language model. `cache_frame_cells` wraps the model's `frame_cells` so
frames already seen are looked up by the hash of their pixels; the projector still runs (and trains)
on every forward.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import torch


class FrameCellCache:
    """An LRU map from a frame's normalised pixels to its frozen cell features ([cells, 1280])."""

    def __init__(self, encode, capacity: int = 4096) -> None:
        self.encode = encode
        self.capacity = capacity
        self.cells: OrderedDict[bytes, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @torch.no_grad()
    def __call__(self, pixels: torch.Tensor, batch: int = 64) -> torch.Tensor:
        flat = pixels.detach().to("cpu", torch.float32).contiguous()
        keys = [hashlib.blake2b(flat[i].numpy().tobytes(), digest_size=16).digest() for i in range(len(flat))]
        missing = [i for i, k in enumerate(keys) if k not in self.cells]
        unique: dict[bytes, int] = {}
        for i in missing:
            unique.setdefault(keys[i], i)
        if unique:
            rows = list(unique.values())
            fresh = self.encode(pixels[rows], batch)
            for key, value in zip(unique, fresh, strict=True):
                self.cells[key] = value
            while len(self.cells) > self.capacity:
                self.cells.popitem(last=False)
        self.misses += len(unique)
        self.hits += len(keys) - len(unique)
        for key in keys:
            self.cells.move_to_end(key)
        return torch.stack([self.cells[k] for k in keys])


def cache_frame_cells(model: torch.nn.Module, capacity: int = 4096) -> FrameCellCache | None:
    """Install a FrameCellCache on a nano model (or the nano inside a peft wrapper); None for other models."""
    target = model
    for _ in range(3):
        if hasattr(target, "frame_cells"):
            break
        target = getattr(target, "base_model", None) or getattr(target, "model", None)
        if target is None:
            return None
    if not hasattr(target, "frame_cells"):
        return None
    existing = target.__dict__.get("frame_cells")
    if isinstance(existing, FrameCellCache):
        return existing
    cache = FrameCellCache(target.frame_cells, capacity)
    target.__dict__["frame_cells"] = cache
    return cache
