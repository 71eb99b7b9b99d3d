"""A key/value cache for generation that writes each new token into reserved room instead of re-copying.

transformers' `DynamicLayer.update` concatenates every step (`torch.cat([keys, new])`), so decoding T
tokens after a prompt of P copies the whole cache T times: on nano on 2 CPU cores that copy was 37% of
a rollout batch's time (16 rows, 40 tokens after ~300 prompt tokens; torch.profiler, aten::cat). A
`GrowingLayer` keeps its keys and values in a buffer with room for the tokens still to come and returns
views of the filled part; when the room runs out it grows by half at once (amortised, like a list).

For generation only (no gradients): an in-place write into a buffer that autograd saved would be an
error. The training log-probs keep transformers' own cache.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class GrowingLayer(DynamicLayer):
    """A `DynamicLayer` whose keys and values are views of a buffer with spare room along the sequence."""

    def __init__(self, reserve: int = 64, **kwargs) -> None:
        super().__init__(**kwargs)
        self.reserve = reserve
        self._room_k: torch.Tensor | None = None
        self._room_v: torch.Tensor | None = None

    @classmethod
    def taking_over(cls, layer: DynamicLayer, reserve: int) -> GrowingLayer:
        """A growing layer holding `layer`'s keys and values, with room for `reserve` more tokens."""
        out = cls(reserve=reserve)
        if layer.is_initialized and layer.keys is not None and layer.keys.numel():
            out.lazy_initialization(layer.keys, layer.values)
            out._write(layer.keys, layer.values)
        return out

    def _write(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        filled = self.get_seq_length()
        need = filled + keys.shape[-2]
        room = self._room_k
        if room is None or room.shape[:2] != keys.shape[:2] or need > room.shape[-2]:
            capacity = need + max(self.reserve, need // 2)
            shape = (*keys.shape[:2], capacity, keys.shape[-1])
            new_k = keys.new_empty(shape)
            new_v = values.new_empty((*values.shape[:2], capacity, values.shape[-1]))
            if filled:
                new_k[..., :filled, :].copy_(self.keys)
                new_v[..., :filled, :].copy_(self.values)
            self._room_k, self._room_v = new_k, new_v
        self._room_k[..., filled:need, :].copy_(keys)
        self._room_v[..., filled:need, :].copy_(values)
        self.keys = self._room_k[..., :need, :]
        self.values = self._room_v[..., :need, :]

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        self._write(key_states, value_states)
        return self.keys, self.values

    def _rebuild(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        self._room_k = self._room_v = None
        self.keys = keys[..., :0, :]
        self.values = values[..., :0, :]
        self._write(keys, values)

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.get_seq_length() > 0:
            self._rebuild(
                self.keys.repeat_interleave(repeats, dim=0), self.values.repeat_interleave(repeats, dim=0)
            )

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.get_seq_length() > 0:
            self._rebuild(self.keys[indices, ...], self.values[indices, ...])

    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)  # views of the same room: later writes land after the kept part

    def reset(self) -> None:
        self._room_k = self._room_v = None
        super().reset()


def growing_cache(cache: DynamicCache | None, reserve: int) -> DynamicCache:
    """`cache` (a filled prompt cache) with every plain layer growing in place, room for `reserve` tokens;
    with None, an empty cache whose layers will be created growing."""
    if cache is None:
        out = DynamicCache()
        out.layer_class_to_replicate = lambda: GrowingLayer(reserve=reserve)
        return out
    cache.layers = [
        GrowingLayer.taking_over(layer, reserve) if type(layer) is DynamicLayer else layer
        for layer in cache.layers
    ]
    return cache
