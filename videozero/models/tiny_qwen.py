"""tiny-qwen: a random-init Qwen3-VL (or Qwen2.5-VL) of the real architecture, for fast plumbing checks.

Same classes, processor layout and generation path as the checkpoints GPU users bring, a few hundred
thousand parameters. It does not learn anything useful (its language model is untrained).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import torch

from videozero.models.qwen_video import VisionSpec
from videozero.models.vocabulary import VISION_TOKENS, shared_tokenizer

TinyFamily = Literal["qwen3_vl", "qwen2_5_vl"]


def tiny_qwen_config(family: TinyFamily = "qwen3_vl", hidden: int = 64, layers: int = 2):
    """A Qwen-VL config of `family` with `hidden` width, sized for a CPU and the shared vocabulary."""
    tok = shared_tokenizer()
    start, end, image, video = tok.convert_tokens_to_ids(list(VISION_TOKENS))
    heads, head_dim = 4, hidden // 4
    quarter = head_dim // 2
    ids = {
        "image_token_id": image,
        "video_token_id": video,
        "vision_start_token_id": start,
        "vision_end_token_id": end,
    }
    text = {
        "vocab_size": len(tok),
        "hidden_size": hidden,
        "intermediate_size": hidden * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "pad_token_id": tok.pad_token_id,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
    }
    # mrope_section splits head_dim / 2 rotary frequencies over (time, height, width)
    section = [quarter - 2 * (quarter // 3), quarter // 3, quarter // 3]
    if family == "qwen3_vl":
        from transformers import Qwen3VLConfig

        text |= {
            "head_dim": head_dim,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5000.0,
                "mrope_section": section,
                "mrope_interleaved": True,
            },
        }
        vision = {
            "depth": layers,
            "hidden_size": hidden,
            "intermediate_size": hidden * 2,
            "num_heads": heads,
            "patch_size": 16,
            "out_hidden_size": hidden,
            "num_position_embeddings": 256,
            "deepstack_visual_indexes": [0],
        }
        return Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)
    if family == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig

        text |= {"rope_parameters": {"rope_type": "default", "rope_theta": 5000.0, "mrope_section": section}}
        vision = {
            "depth": layers,
            "hidden_size": hidden,
            "intermediate_size": hidden * 2,
            "num_heads": heads,
            "patch_size": 14,
            "out_hidden_size": hidden,
            "window_size": 56,
            "fullatt_block_indexes": [layers - 1],
            "tokens_per_second": 2,
        }
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)
    raise ValueError(f"unknown tiny-qwen family {family!r}")


def build_tiny_qwen(
    out: str | Path, family: TinyFamily = "qwen3_vl", hidden: int = 64, seed: int = 0
) -> Path:
    """Random-init tiny-qwen saved in Hugging Face format (model, generation config, tokenizer) at `out`."""
    from transformers import AutoModelForImageTextToText, GenerationConfig

    torch.manual_seed(seed)
    config = tiny_qwen_config(family, hidden)
    model = AutoModelForImageTextToText.from_config(config)
    tok = shared_tokenizer()
    model.generation_config = GenerationConfig(
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    write_processor_configs(out, config)
    return out


def write_processor_configs(out: Path, config) -> None:
    """The processor files engines that load Qwen's own processors (vLLM) read, matching `VisionSpec.for_config`."""
    spec = VisionSpec.for_config(config)
    qwen3 = config.model_type == "qwen3_vl"
    processor = "Qwen3VLProcessor" if qwen3 else "Qwen2_5_VLProcessor"
    common = {
        "patch_size": spec.patch_size,
        "temporal_patch_size": spec.temporal_patch_size,
        "merge_size": spec.merge_size,
        "image_mean": list(spec.image_mean),
        "image_std": list(spec.image_std),
        "processor_class": processor,
    }
    image = common | {
        "image_processor_type": "Qwen2VLImageProcessor",
        "size": {"shortest_edge": spec.min_pixels, "longest_edge": spec.max_pixels},
    }
    video = common | {
        "video_processor_type": "Qwen3VLVideoProcessor" if qwen3 else "Qwen2VLVideoProcessor",
        "size": {"shortest_edge": spec.min_pixels, "longest_edge": spec.video_max_pixels * 64},
    }
    (out / "preprocessor_config.json").write_text(json.dumps(image, indent=2))
    (out / "video_preprocessor_config.json").write_text(json.dumps(video, indent=2))
    (out / "processor_config.json").write_text(json.dumps({"processor_class": processor}, indent=2))
