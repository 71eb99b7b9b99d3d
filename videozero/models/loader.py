"""One loading path for every video LM: Qwen2.5-VL, Qwen3-VL and nano, by hub id or local directory.

Nothing is downloaded unless the caller allows it (`HF_HUB_OFFLINE` unset and `local_files_only=False`);
a bad id or directory gives one sentence saying what is wrong and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from videozero.errors import VideozeroError
from videozero.models.qwen_video import VisionSpec
from videozero.models.source import check_model_source, looks_local, not_found, offline

FAMILIES = {
    "qwen2_vl": "qwen2_5_vl",
    "qwen2_5_vl": "qwen2_5_vl",
    "qwen3_vl": "qwen3_vl",
    "videozero_nano": "nano",
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    """A loaded video LM with what prompts need to address it: tokenizer, family, vision layout."""

    model: Any
    tokenizer: Any
    family: str
    vision: VisionSpec
    source: str

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype


def resolve_device(device: str | None) -> torch.device:
    """'auto' (or None) picks CUDA when present, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise VideozeroError(f"device {device!r} is not a torch device; use cpu, cuda or cuda:N.") from None


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """'auto' (or None) is bfloat16 on CUDA and float32 on CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise VideozeroError(f"dtype {dtype!r} is not one of auto, {', '.join(DTYPES)}.")
    return DTYPES[dtype]


def _load_config(id_or_dir: str, local_only: bool):
    from transformers import AutoConfig

    import videozero.models.nano  # noqa: F401  (registers the nano classes with the Auto classes)

    source = check_model_source(id_or_dir, local_only)
    try:
        return AutoConfig.from_pretrained(source, local_files_only=local_only)
    except (OSError, ValueError, KeyError) as exc:
        if looks_local(id_or_dir):
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise VideozeroError(
                f"{source}/config.json could not be read as a model config ({first})."
            ) from None
        raise not_found(id_or_dir, local_only) from None


def load_model(
    id_or_dir: str | Path,
    dtype: str | torch.dtype | None = "auto",
    device: str | None = "auto",
    lora: str | Path | dict | None = None,
    trainable: bool = False,
    local_files_only: bool | None = None,
) -> LoadedModel:
    """Load a video LM and its tokenizer from a hub id or a local directory.

    `lora` is a saved peft adapter directory (loaded on top) or a dict of `peft.LoraConfig` arguments (a
    fresh adapter, for training). The model is in eval mode unless `trainable`.
    """
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    source = str(id_or_dir)
    local_only = offline() if local_files_only is None else local_files_only
    config = _load_config(source, local_only)
    family = _family(config, source)
    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    where = str(Path(source).expanduser()) if Path(source).expanduser().is_dir() else source
    try:
        tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=local_only)
        model = AutoModelForImageTextToText.from_pretrained(
            where, config=config, dtype=torch_dtype, local_files_only=local_only
        )
    except Exception as exc:  # an unreadable file, or weights cut short or corrupted (safetensors' error)
        if not isinstance(exc, OSError) and "safetensor" not in type(exc).__module__.lower():
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise VideozeroError(
            f"model {source!r} could not be loaded ({first}): the checkpoint is incomplete or corrupted; "
            "rebuild it or point to another."
        ) from None
    tokenizer.padding_side = "left"
    if family == "nano" and dev.type == "cpu":
        from videozero.models.attention import SINGLE_QUERY

        model.set_attn_implementation(SINGLE_QUERY)  # one-token decode steps as two matmuls (docs/cpu.md)
    model.to(dev)
    if lora is not None:
        model = _attach_lora(model, lora)
    model.train(trainable)
    return LoadedModel(
        model=model, tokenizer=tokenizer, family=family, vision=_vision(family, config, where), source=source
    )


def load_model_info(id_or_dir: str | Path, local_files_only: bool | None = None) -> LoadedModel:
    """Tokenizer, family and vision layout of a model without its weights (for engines that load their own)."""
    from transformers import AutoTokenizer

    source = str(id_or_dir)
    local_only = offline() if local_files_only is None else local_files_only
    config = _load_config(source, local_only)
    family = _family(config, source)
    where = str(Path(source).expanduser()) if Path(source).expanduser().is_dir() else source
    tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=local_only)
    return LoadedModel(
        model=None, tokenizer=tokenizer, family=family, vision=_vision(family, config, where), source=source
    )


def _family(config, source: str) -> str:
    family = FAMILIES.get(config.model_type)
    if family is None:
        raise VideozeroError(
            f"model {source!r} is a {config.model_type!r} model; supported are Qwen2-VL, Qwen2.5-VL, Qwen3-VL and nano."
        )
    return family


def _vision(family: str, config, where: str) -> VisionSpec:
    if family == "nano":
        return VisionSpec(patch_size=1, temporal_patch_size=1, merge_size=1)
    return VisionSpec.for_config(config, where if Path(where).is_dir() else None)


def _attach_lora(model, lora: str | Path | dict):
    from peft import LoraConfig, PeftModel, get_peft_model

    if isinstance(lora, dict):
        return get_peft_model(model, LoraConfig(**lora))
    path = Path(lora).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise VideozeroError(f"{path} has no adapter_config.json; pass a directory saved by peft.")
    return PeftModel.from_pretrained(model, str(path))
