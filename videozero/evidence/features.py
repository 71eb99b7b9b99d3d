"""Per-frame features the miner scores evidence with: EfficientNet-Lite0 pooled vectors, top ImageNet
labels, and motion energy from frame differences. Cached per (content hash, sampling) on disk."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from videozero.video.cache import VideoCache, cached_clip, save_clip
from videozero.video.decode import SamplingConfig, VideoClip, decode_video
from videozero.video.frame_encoder import FEATURE_DIM, frame_encoder, imagenet_classes

# The encoder's input side in pixels. Measured on 180 frames of the real sample clips, one thread,
# against 224 px: 128 px costs 6 ms a frame (224 px: 37 ms) and keeps 224's top-1 label in its top 5
# for 46% of frames (112 px: 21%, at 4 ms; 96 px: 17%), mean cosine 0.77 to the 224 px features.
ENCODER_SIZE = 128
# Intra-op threads while encoding. One thread: on 2 shared cores OpenMP's barriers made two threads
# 5-9x slower than one (measured 50 frames/s at 128 px with one thread under load), and decoding
# already keeps a core busy.
ENCODER_THREADS = 1
# Once decoding is over, the encoder has the machine to itself.
ENCODER_THREADS_ALONE = max(1, min(4, os.cpu_count() or 1))
# Frames decoded per block handed to the encoder when decoding and encoding overlap.
ENCODER_BLOCK = 32
TOP_K = 5
MOTION_SIDE = 64
FEATURES_VERSION = 1


@dataclass
class FrameFeatures:
    """Features of every sampled frame of one video, aligned with its timestamps.

    `pooled` float32 [T, 1280] L2-normalised; `label_ids`/`label_probs` [T, k] top ImageNet classes;
    `motion` float32 [T] mean absolute difference to the previous sampled frame in [0, 1] (0 for the
    first frame).
    """

    timestamps: np.ndarray
    pooled: np.ndarray
    label_ids: np.ndarray
    label_probs: np.ndarray
    motion: np.ndarray

    def __len__(self) -> int:
        return len(self.timestamps)

    def labels(self, i: int) -> list[tuple[str, float]]:
        """Top ImageNet (name, probability) of frame `i`."""
        names = imagenet_classes()
        return [
            (names[int(j)], round(float(p), 4))
            for j, p in zip(self.label_ids[i], self.label_probs[i], strict=True)
        ]

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "version": np.array(FEATURES_VERSION),
            "timestamps": self.timestamps,
            "pooled": self.pooled,
            "label_ids": self.label_ids,
            "label_probs": self.label_probs,
            "motion": self.motion,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> FrameFeatures | None:
        if int(arrays.get("version", -1)) != FEATURES_VERSION:
            return None
        try:
            return cls(*(arrays[k] for k in ("timestamps", "pooled", "label_ids", "label_probs", "motion")))
        except KeyError:
            return None


def motion_energy(frames: np.ndarray) -> np.ndarray:
    """Mean absolute grey-level difference between consecutive frames at a small size, in [0, 1].

    >>> f = np.zeros((3, 8, 8, 3), np.uint8); f[2] = 255
    >>> motion_energy(f).tolist()
    [0.0, 0.0, 1.0]
    """
    if len(frames) == 0:
        return np.zeros(0, np.float32)
    h, w = frames.shape[1:3]
    scale = min(1.0, MOTION_SIDE / min(h, w))
    x = small_grey(frames, (max(1, round(h * scale)), max(1, round(w * scale))))
    diff = (x[1:] - x[:-1]).abs().mean((1, 2)) / 255.0
    return np.concatenate([[0.0], diff.numpy()]).astype(np.float32)


def small_grey(frames: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Grey (luma) frames [T, h, w] as 0-255 floats, shrunk to `size` = (h, w) by area averaging
    (OpenCV, frame by frame: no float copy of the whole video is made)."""
    import cv2

    h, w = size
    out = np.empty((len(frames), h, w), np.float32)
    for i, frame in enumerate(frames):
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        out[i] = grey if grey.shape == (h, w) else cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(out)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with `n` intra-op torch threads, then restore the previous number."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def compute_features(clip: VideoClip) -> FrameFeatures:
    """Run the frozen frame encoder and the motion measure over a clip's sampled frames."""
    with torch_threads(ENCODER_THREADS):
        pooled, logits = frame_encoder().pooled_and_logits(clip.frames, ENCODER_SIZE)
    return _features(clip, pooled, logits)


def decode_with_features(path: str | Path, sampling: SamplingConfig) -> tuple[VideoClip, FrameFeatures]:
    """Decode a video and encode its frames at once: a worker thread encodes each block of frames
    while the next block is decoded (both release the GIL, so the two overlap on two cores). The
    decoder never waits for the encoder, and once decoding is done the encoder takes every core."""
    blocks: queue.Queue[np.ndarray | None] = queue.Queue()
    outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
    failure: list[BaseException] = []
    decoded = threading.Event()

    def encode() -> None:
        try:
            with torch_threads(ENCODER_THREADS):
                while (block := blocks.get()) is not None:
                    if decoded.is_set() and torch.get_num_threads() != ENCODER_THREADS_ALONE:
                        torch.set_num_threads(ENCODER_THREADS_ALONE)  # per thread: only this one
                    outputs.append(frame_encoder().pooled_and_logits(block, ENCODER_SIZE))
        except BaseException as exc:  # handed to the caller below
            failure.append(exc)
            while blocks.get() is not None:  # let the decoder finish
                pass

    worker = threading.Thread(target=encode, name="frame-encoder", daemon=True)
    worker.start()
    try:
        clip = decode_video(path, sampling, on_chunk=blocks.put, chunk=ENCODER_BLOCK)
    finally:
        decoded.set()
        blocks.put(None)
        worker.join()
    if failure:
        raise failure[0]
    if outputs:
        pooled, logits = torch.cat([p for p, _ in outputs]), torch.cat([lg for _, lg in outputs])
    else:
        pooled, logits = torch.zeros(0, FEATURE_DIM), torch.zeros(0, 1000)
    return clip, _features(clip, pooled, logits)


def _features(clip: VideoClip, pooled: torch.Tensor, logits: torch.Tensor) -> FrameFeatures:
    probs, ids = logits.softmax(-1).topk(min(TOP_K, logits.shape[-1]) if len(logits) else TOP_K, dim=-1)
    return FrameFeatures(
        timestamps=np.asarray(clip.timestamps, np.float64),
        pooled=F.normalize(pooled, dim=-1).numpy().astype(np.float32),
        label_ids=ids.numpy().astype(np.int16),
        label_probs=probs.numpy().astype(np.float32),
        motion=motion_energy(clip.frames),
    )


def cached_features(
    clip: VideoClip, content_hash: str, sampling: SamplingConfig, cache: VideoCache | None
) -> tuple[FrameFeatures, bool]:
    """Features of a clip, computed once per (content, sampling); returns (features, from cache)."""
    name = f"features-e{ENCODER_SIZE}"
    if cache is not None:
        arrays = cache.load(content_hash, sampling, name)
        feats = FrameFeatures.from_arrays(arrays) if arrays is not None else None
        if feats is not None and len(feats) == len(clip):
            return feats, True
    feats = compute_features(clip)
    if cache is not None:
        cache.save(content_hash, sampling, name, feats.arrays())
    return feats, False


def cached_clip_and_features(
    path: str | Path, content_hash: str, sampling: SamplingConfig, cache: VideoCache | None
) -> tuple[VideoClip, FrameFeatures]:
    """A video's sampled frames and their features, each computed at most once per (content,
    sampling); when neither is cached, decoding and encoding overlap."""
    name = f"features-e{ENCODER_SIZE}"
    if cache is not None and cache.entry(content_hash, sampling, "frames").is_file():
        clip, _ = cached_clip(path, content_hash, sampling, cache)
        feats, _ = cached_features(clip, content_hash, sampling, cache)
        return clip, feats
    clip, feats = decode_with_features(path, sampling)
    if cache is not None:
        save_clip(cache, content_hash, sampling, clip)
        cache.save(content_hash, sampling, name, feats.arrays())
    return clip, feats
