"""Configuration of nano: a pretrained small LM, a frozen pretrained frame encoder, a trainable projector."""

from __future__ import annotations

from typing import ClassVar

from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec


class NanoConfig(PreTrainedConfig):
    """nano's config: the language model's config (`text_config`) plus how frames become tokens.

    Each frame is resized to `frame_size` px, encoded by EfficientNet-Lite0 into a 1280-channel map, pooled
    to `frame_grid` x `frame_grid` cells, and each cell projected to one LM token. With `visual_words` k > 0
    each frame's tokens start with k visual words: the embeddings of the top-k ImageNet classes by the frame
    encoder's own classifier (on the mean of its cells), a discrete code that equal or near-equal frames
    share, so that a frame shown twice (a query image and its moment in the video) reads the same to the LM.
    With `frame_recall`, each still image shown with a video is followed by the time of the shown frame it
    most resembles (cosine of the frozen encoder's mean cell features, `recall_times`): the cross-image
    lookup a 135M LM does not learn from a warm-up's budget, made by the frozen encoder, so that the LM
    learns what to do with it (compare, order, pick the option span that holds it).
    With `span_frames` (used with `frame_recall`), each option that names spans is followed by the times
    of the shown frames inside them, each keyed by the option's letter (`B. from 9.8 s to 14.8 s (shown
    10.0 B, 12.5 B)`), and an option image's recall by its letter (`Option B: <image> like 12.5 B`): a
    135M LM does not learn to compare decimal times in a warm-up's budget (bench/results/README.md), so
    the hop from a recalled time to an option is written as a match its copying heads complete.
    """

    model_type = "videozero_nano"
    sub_configs_defaults: ClassVar[dict[str, SubConfigSpec]] = {
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama")
    }

    text_config: dict | PreTrainedConfig | None = None
    frame_size: int = 112
    frame_grid: int = 2
    visual_words: int = 0
    frame_recall: bool = False
    span_frames: bool = False
    feature_dim: int = 1280
    projector_hidden: int = 1024
    image_token_id: int = 49154
    video_token_id: int = 49155
    vision_start_token_id: int = 49152
    vision_end_token_id: int = 49153
    tie_word_embeddings: bool = True
    imagenet_classes: int = 1000

    @property
    def tokens_per_frame(self) -> int:
        """LM tokens of one frame or still image: its visual words, then its grid cells."""
        return self.visual_words + self.frame_grid * self.frame_grid

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.text_config is not None and not self.text_config.tie_word_embeddings:
            self.tie_word_embeddings = False
