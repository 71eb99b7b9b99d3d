"""Local checkpoints and clips the model tests share, built once per test process."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REAL_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "videos" / "real"
_ROOT = Path(tempfile.mkdtemp(prefix="vz-models-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)


@cache
def tiny_qwen_dir(family: str = "qwen3_vl") -> Path:
    from videozero.models.tiny_qwen import build_tiny_qwen

    return build_tiny_qwen(_ROOT / f"tiny-{family}", family=family)


@cache
def nano_dir(visual_words: int = 0) -> Path:
    """nano with a token alignment (3 steps on few frames): the build path, not its quality."""
    from videozero.models.nano.build import build_nano

    path, _ = build_nano(
        _ROOT / f"nano-{visual_words}",
        align_steps=3,
        visual_words=visual_words,
        batch_size=4,
        generated=8,
        per_clip=4,
        evaluate=False,
    )
    return path


@cache
def generated_clip() -> tuple[Path, object]:
    """A generated mp4 (3 shots, known events) and its ground truth."""
    from videozero.video.synthetic import demo_spec, write_clip

    path = _ROOT / "generated.mp4"
    return path, write_clip(demo_spec(), path)


def real_clip_path() -> Path:
    return REAL_VIDEOS / "testvideo.mp4"


def noise_frames(n: int = 8, size: tuple[int, int] = (112, 112), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *size, 3), dtype=np.uint8)
