"""Faults of the disk under a checkpoint: a full disk while saving leaves the previous checkpoint usable and
says so; a corrupted checkpoint is refused in one sentence."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from tests.model_builds import tiny_qwen_dir
from videozero.errors import VideozeroError
from videozero.models.loader import load_model
from videozero.solver.training import save_checkpoint


def _weights(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir()) if p.is_file()}


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch) -> None:
    lm = load_model(tiny_qwen_dir(), device="cpu")
    out = save_checkpoint(lm, tmp_path / "solver")
    before = _weights(out)

    def no_space(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(lm.model), "save_pretrained", no_space)
    with pytest.raises(
        VideozeroError, match=r"No space left on device\) \(the previous checkpoint there is kept\)"
    ):
        save_checkpoint(lm, out)
    monkeypatch.undo()
    assert _weights(out) == before  # untouched, and nothing half-written beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["solver"]
    assert load_model(out, device="cpu").family == lm.family


def test_a_corrupted_checkpoint_is_refused_in_one_sentence(tmp_path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_qwen_dir(), broken)
    weights = next(broken.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # cut in half
    with pytest.raises(VideozeroError, match="could not be loaded"):
        load_model(broken, device="cpu")
