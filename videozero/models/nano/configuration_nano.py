"""Configuration of nano: a pretrained small LM, a frozen pretrained frame encoder, a trainable projector."""

from __future__ import annotations

from typing import ClassVar

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec


class NanoConfig(PreTrainedConfig):
    """nano's config: the language model's config (`text_config`) plus how frames become tokens.

    Each frame is resized to `frame_size` px, encoded by EfficientNet-Lite0 into a 1280-channel map, pooled
    to `frame_grid` x `frame_grid` cells, and each cell projected to one LM token.
    """

    model_type = "videozero_nano"
    sub_configs_defaults: ClassVar[dict[str, SubConfigSpec]] = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama")
    }

    text_config: dict | PreTrainedConfig | None = None
    frame_size: int = 112
    frame_grid: int = 2
    feature_dim: int = 1280
    projector_hidden: int = 1024
    image_token_id: int = 49154
    video_token_id: int = 49155
    vision_start_token_id: int = 49152
    vision_end_token_id: int = 49153
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.text_config is not None and not self.text_config.tie_word_embeddings:
            self.tie_word_embeddings = False
