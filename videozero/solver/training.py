"""What the warm-up and the GRPO trainer share: trainable parts and their learning rates, checkpoints.

The trainable parts are the language model (through a LoRA adapter, or in full) and the vision-to-LM
projector (nano's `projector`, Qwen-VL's `visual.merger`), each with its own learning rate; frozen
vision towers stay frozen. A checkpoint is always a plain Hugging Face directory (LoRA merged in), so
`models.loader.load_model` reads it like any other, and it is recorded as a `store.tables.Checkpoint`.
"""

from __future__ import annotations

import copy
import math
import os
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from videozero.errors import VideozeroError
from videozero.faults import crash_point
from videozero.models.loader import LoadedModel
from videozero.models.nano.frame_cache import FrameCellCache
from videozero.models.prompt import Request, build_batch, token_logprobs

PROJECTOR_NAMES = ("projector", "visual.merger")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def is_projector(name: str) -> bool:
    return any(part in name for part in PROJECTOR_NAMES)


def prepare_trainable(lm: LoadedModel, lora: dict | None, train_projector: bool) -> None:
    """Attach a fresh LoRA adapter (peft kwargs) or unfreeze the LM; unfreeze the projector if asked.

    A model that already carries an adapter (a warm-up's) trains that adapter, whatever `lora` says.

    Vision towers (Qwen-VL's `visual` blocks) stay frozen; nano's frame encoder is outside the model.
    """
    model = lm.model
    if lora is not None and not hasattr(model, "peft_config"):
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(**lora))
        lm.model = model
    adapter = hasattr(model, "peft_config")  # an adapter already on the model keeps being the one trained
    for name, param in model.named_parameters():
        if is_projector(name):
            param.requires_grad_(train_projector)
        elif adapter:
            param.requires_grad_("lora_" in name)
        else:
            param.requires_grad_(not name.startswith(("visual.", "model.visual.")) and ".visual." not in name)


def param_groups(
    model: torch.nn.Module, lr: float, projector_lr: float, weight_decay: float = 0.0
) -> list[dict]:
    """Optimiser groups: the projector at `projector_lr`, every other trainable tensor at `lr`."""
    proj = [p for n, p in model.named_parameters() if p.requires_grad and is_projector(n)]
    rest = [p for n, p in model.named_parameters() if p.requires_grad and not is_projector(n)]
    groups = []
    if rest:
        groups.append({"params": rest, "lr": lr, "weight_decay": weight_decay, "name": "lm"})
    if proj and projector_lr > 0:
        groups.append({"params": proj, "lr": projector_lr, "weight_decay": weight_decay, "name": "projector"})
    return groups


def supervised_backward(
    lm: LoadedModel,
    requests: Sequence[Request],
    targets: Sequence[str],
    micro_batch_size: int,
    scale: float = 1.0,
) -> float:
    """Accumulate gradients of `scale` x the mean token NLL of `targets` given `requests`, a few
    sequences at a time (balanced micro-batches of at most `micro_batch_size`: the memory of one, the
    gradient of the whole batch); returns that loss."""
    parts = [
        build_batch(lm, [requests[i] for i in part], [targets[i] for i in part]).to(lm.device, lm.dtype)
        for part in np.array_split(np.arange(len(requests)), math.ceil(len(requests) / micro_batch_size))
    ]
    tokens = sum(int(part.completion_mask.sum()) for part in parts) or 1
    total = 0.0
    for part in parts:
        micro = -scale * (token_logprobs(lm.model, part).sum() / tokens)
        micro.backward()
        total += float(micro.detach())
    return total


def trainable_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _drop_caches(module: torch.nn.Module) -> None:
    for sub in module.modules():
        if isinstance(sub.__dict__.get("frame_cells"), FrameCellCache):
            del sub.__dict__["frame_cells"]


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy of `model` in eval mode (the KL reference)."""
    ref = copy.deepcopy(model)
    ref.requires_grad_(False)
    return ref.eval()


def save_checkpoint(lm: LoadedModel, out: str | Path) -> Path:
    """Save `lm` as a plain HF directory (LoRA merged into a copy; the training model is untouched).

    The directory is written beside `out` and renamed into place once complete: a process killed while
    saving leaves no half-written checkpoint at `out`, and a full disk leaves the one there before intact
    (and says so)."""
    out = Path(out)
    partial = out.with_name(f".{out.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    model = copy.deepcopy(lm.model)
    if hasattr(model, "peft_config"):
        model = model.merge_and_unload()
    _drop_caches(model)
    model.requires_grad_(True)
    try:
        partial.mkdir(parents=True)
        model.save_pretrained(partial)
        lm.tokenizer.save_pretrained(partial)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        kept = " (the previous checkpoint there is kept)" if (out / "config.json").exists() else ""
        raise VideozeroError(
            f"saving the checkpoint {out} failed ({exc.strerror or exc}){kept}: free disk space and rerun "
            "the same command to resume."
        ) from None
    crash_point("checkpoint:saved")  # complete, not yet in place
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
    return out
