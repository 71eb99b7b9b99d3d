"""nano: SmolLM2 reads frames as tokens: frozen EfficientNet-Lite0 cells -> MLP projector -> LM embeddings.

Frames enter as `pixel_values_videos` [frames, 3, S, S] (normalised as the frame encoder expects) with
`video_grid_thw` rows (frames, grid, grid); still images likewise as `pixel_values` / `image_grid_thw`.
Each frame's tokens follow its true timestamp as text in the prompt (see `videozero.models.prompt`).
Frozen cell features may be passed precomputed (`video_cells` / `image_cells`, [frames, cells, 1280]) so
that training loops can cache them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModelForCausalLM, GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from videozero.models.cache_arg import CACHE_ARG
from videozero.models.nano.configuration_nano import NanoConfig
from videozero.video.frame_encoder import FrameEncoder, frame_encoder


class NanoPreTrainedModel(PreTrainedModel):
    config_class = NanoConfig
    base_model_prefix = ""
    supports_gradient_checkpointing = True
    _no_split_modules: ClassVar[list[str]] = ["LlamaDecoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _can_compile_fullgraph = False


class NanoProjector(nn.Module):
    """Frame-encoder cells (1280-d) -> LM embeddings, plus a learned embedding of each cell's position;
    with `visual_words`, an embedding per ImageNet class for the frame's visual words."""

    def __init__(self, config: NanoConfig) -> None:
        super().__init__()
        hidden = config.text_config.hidden_size
        self.norm = nn.LayerNorm(config.feature_dim)
        self.fc1 = nn.Linear(config.feature_dim, config.projector_hidden)
        self.fc2 = nn.Linear(config.projector_hidden, hidden)
        self.cell = nn.Parameter(torch.zeros(config.frame_grid * config.frame_grid, hidden))
        self.words = nn.Embedding(config.imagenet_classes, hidden) if config.visual_words else None

    def forward(self, cells: torch.Tensor, words: torch.Tensor | None = None) -> torch.Tensor:
        """[frames, cells, 1280] (and visual word ids [frames, k]) -> [frames, k + cells, hidden]."""
        tokens = self.fc2(F.gelu(self.fc1(self.norm(cells)))) + self.cell
        if self.words is None:
            return tokens
        if words is None:
            raise ValueError("this nano reads visual words: pass each frame's class ids")
        return torch.cat([self.words(words).to(tokens.dtype), tokens], dim=1)


class NanoForConditionalGeneration(NanoPreTrainedModel, GenerationMixin):
    """nano as a causal LM over text with frame and image placeholders; generates like any HF model."""

    _tied_weights_keys: ClassVar[dict[str, str]] = {
        "language_model.lm_head.weight": "language_model.model.embed_tokens.weight"
    }

    def __init__(self, config: NanoConfig) -> None:
        super().__init__(config)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.projector = NanoProjector(config)
        self.post_init()

    # -- frames -------------------------------------------------------------------------------------------
    def frame_encoder(self) -> FrameEncoder:
        """The frozen frame encoder on this model's device (kept outside the checkpoint: it is pretrained)."""
        device = self.projector.fc1.weight.device
        if device.type == "cpu":
            return frame_encoder()
        encoder = self.__dict__.get("_device_encoder")
        if encoder is None:
            encoder = FrameEncoder().to(device)
            self.__dict__["_device_encoder"] = encoder
        return encoder

    def frame_pixels(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 [T, H, W, 3] -> the normalised [T, 3, S, S] pixels nano takes."""
        return FrameEncoder.normalise(torch.as_tensor(np.ascontiguousarray(frames)), self.config.frame_size)

    @torch.no_grad()
    def frame_cells(self, pixels: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """Frozen features of each frame's grid cells: [T, grid * grid, 1280]."""
        encoder = self.frame_encoder()
        out = []
        for i in range(0, len(pixels), batch):
            maps = encoder.net.extract_features(
                pixels[i : i + batch].to(encoder.net._fc.weight.device).float()
            )
            pooled = F.adaptive_avg_pool2d(maps, self.config.frame_grid)
            out.append(pooled.flatten(2).transpose(1, 2))
        return torch.cat(out)

    @torch.no_grad()
    def visual_word_ids(self, cells: torch.Tensor) -> torch.Tensor | None:
        """The frame encoder's top-k ImageNet classes of each frame, [T, k] (None: nano reads none).

        The encoder's own classifier reads the mean of the frame's pooled cells: a centre-weighted mean
        feature (at 112 px the 3x3 map's 2x2 cells overlap in its middle row and column)."""
        k = self.config.visual_words
        if not k:
            return None
        head = self.frame_encoder().net._fc
        logits = head(cells.mean(1).to(head.weight.device, head.weight.dtype))
        return logits.topk(k, dim=-1).indices.to(cells.device)

    @torch.no_grad()
    def recall_times(
        self, images: torch.Tensor, frames: torch.Tensor, times: np.ndarray | Sequence[float]
    ) -> list[float]:
        """For each still image (normalised pixels [N, 3, S, S]), the time of the shown frame ([T, 3, S, S]
        at `times`) it most resembles: cosine of the frozen encoder's mean cell features, earliest on ties."""
        if len(frames) != len(times):
            raise ValueError(f"{len(frames)} frames but {len(times)} timestamps")
        query = F.normalize(self.frame_cells(images).float().mean(1), dim=-1)
        shown = F.normalize(self.frame_cells(frames).float().mean(1), dim=-1)
        best = (query @ shown.T).argmax(dim=1)
        return [float(times[int(i)]) for i in best]

    def project(self, cells: torch.Tensor) -> torch.Tensor:
        """Frame tokens from frozen cells, flat: [T * tokens_per_frame, hidden] (gradients reach the
        projector)."""
        cells = cells.to(self.projector.fc1.weight.dtype)
        return self.projector(cells, self.visual_word_ids(cells)).flatten(0, 1)

    def frame_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """Projected frame tokens, flat: [T * tokens_per_frame, hidden] (gradients reach the projector)."""
        return self.project(self.frame_cells(pixels))

    def _merge(
        self,
        input_ids: torch.Tensor,
        embeds: torch.Tensor,
        token_id: int,
        pixels: torch.Tensor | None,
        cells: torch.Tensor | None,
    ) -> torch.Tensor:
        slots = input_ids == token_id
        count = int(slots.sum())
        if pixels is None and cells is None:
            if count:
                raise ValueError(f"the prompt holds {count} vision placeholders but no pixels were given")
            return embeds
        tokens = self.frame_tokens(pixels) if cells is None else self.project(cells)
        if tokens.shape[0] != count:
            raise ValueError(
                f"the prompt holds {count} vision placeholders but the pixels give {tokens.shape[0]} tokens"
            )
        return embeds.masked_scatter(slots.unsqueeze(-1), tokens.to(embeds.dtype))

    # -- HF plumbing --------------------------------------------------------------------------------------
    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_output_embeddings(value)

    def get_decoder(self) -> nn.Module:
        return self.language_model.get_decoder()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache=None,
        past_key_values=None,
        inputs_embeds: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.LongTensor | None = None,
        pixel_values_videos: torch.Tensor | None = None,
        video_grid_thw: torch.LongTensor | None = None,
        mm_token_type_ids: torch.Tensor | None = None,
        second_per_grid_ts: torch.Tensor | None = None,
        image_cells: torch.Tensor | None = None,
        video_cells: torch.Tensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
            inputs_embeds = self._merge(
                input_ids, inputs_embeds, self.config.video_token_id, pixel_values_videos, video_cells
            )
            inputs_embeds = self._merge(
                input_ids, inputs_embeds, self.config.image_token_id, pixel_values, image_cells
            )
        return self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **{CACHE_ARG: cache if cache is not None else past_key_values},
            **kwargs,
        )

    def prepare_inputs_for_generation(self, input_ids, is_first_iteration=False, **kwargs):
        """Vision inputs on the prefill step only; decoding steps read the cache."""
        inputs = super().prepare_inputs_for_generation(
            input_ids, is_first_iteration=is_first_iteration, **kwargs
        )
        if not is_first_iteration and kwargs.get("use_cache", True):
            for key in ("video_cells", "image_cells"):
                inputs.pop(key, None)
        return inputs
