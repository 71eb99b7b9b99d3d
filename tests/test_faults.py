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


def _clip(tmp_path: Path) -> Path:
    from videozero.video.synthetic import ClipSpec, ShotSpec, write_clip

    return write_clip(
        ClipSpec(shots=[ShotSpec(duration_s=2.0), ShotSpec(duration_s=2.0)]), tmp_path / "clip.mp4"
    ).path


def test_a_corrupted_frame_cache_entry_is_decoded_again_and_replaced(tmp_path) -> None:
    from videozero.video.cache import VideoCache, cached_clip, file_sha256
    from videozero.video.decode import MINING_SAMPLING

    clip_path, cache = _clip(tmp_path), VideoCache(tmp_path / "cache")
    digest = file_sha256(clip_path)
    first, hit = cached_clip(clip_path, digest, MINING_SAMPLING, cache)
    assert not hit
    entry = cache.entry(digest, MINING_SAMPLING, "frames")
    entry.write_bytes(entry.read_bytes()[:100])  # cut short, as a crash of an older writer or bad disk would
    again, hit = cached_clip(clip_path, digest, MINING_SAMPLING, cache)
    assert not hit and (again.frames == first.frames).all()  # decoded again, the same frames
    _, hit = cached_clip(clip_path, digest, MINING_SAMPLING, cache)
    assert hit  # and the entry was replaced by a whole one


def test_a_full_disk_while_caching_leaves_the_cache_whole_and_says_so(tmp_path, monkeypatch) -> None:
    import numpy as np

    from videozero.video.cache import VideoCache, cached_clip, file_sha256
    from videozero.video.decode import MINING_SAMPLING

    clip_path, cache = _clip(tmp_path), VideoCache(tmp_path / "cache")
    digest = file_sha256(clip_path)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", no_space)
    with pytest.raises(VideozeroError, match=r"No space left on device.*free disk space"):
        cached_clip(clip_path, digest, MINING_SAMPLING, cache)
    monkeypatch.undo()
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # no partial entry left
    _, hit = cached_clip(clip_path, digest, MINING_SAMPLING, cache)
    assert not hit
    _, hit = cached_clip(clip_path, digest, MINING_SAMPLING, cache)
    assert hit
