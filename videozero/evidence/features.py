"""Per-frame features the miner scores evidence with: EfficientNet-Lite0 pooled vectors, top ImageNet
labels, motion energy from frame differences, and PySceneDetect's content change (what shots are cut
on). Cached per (content hash, sampling, FEATURES_VERSION and the settings in `features_entry`).

Decoding and encoding overlap: a worker thread takes each block of decoded frames, computes grey
thumbnails (motion, reuse), content scores and, in batches, the encoder's output, while the next block
is decoded. What brings mining near decoding's cost (at most 2x decode-only on 2 cores), measured
with bench/mining.py and on the real sample clips at 2 fps:
- the encoder runs an inference copy of the network with its batch norms folded and its padding done
  by the convolutions (frame_encoder.FusedFeatures): one core, 128 px, 7.1 -> 4.0 ms a frame at
  batches of 32, 5.1 -> 3.0 ms at batches of 16 (ENCODER_BATCH); the same maps up to float rounding;
- frames near-identical to the last encoded frame reuse its features (REUSE_*): 113 of 279 frames of
  one-by-one-person-detection.mp4 (fixed camera), 10 of 360 of bbb_first180s_360p.mp4 (animation,
  constant motion), 32 of 48 of testvideo.mp4. Reused against encoded features of the same frames:
  cosine mean 0.997 / min 0.992 (one-by-one), 0.996 / 0.989 (bbb); the top-1 label is the same for 90%
  / 80% of reused frames and always in their own top 5. The 128 px labels flicker anyway: two
  consecutive encoded frames share their top-1 label for 76% / 39% of frames, and rounding the resized
  input to whole grey levels alone changes it for 11-12%. Shots and event spans are unchanged on
  every real clip; of 16 / 94 segments, 2 frame anchors move to a tied frame of the same still stretch;
  saliency moves by at most 0.0007 / 0.029 and the top 5 shots and events keep their order. Shot F1
  against PySceneDetect on bbb stays 0.98 (cuts come from content scores, which reuse never touches).
  The lowest cosine seen, 0.68 on testvideo, is between two near-black frames (mean grey 0.001) whose
  encoder outputs are noise (top label at 1%);
- content scores are computed per block in the worker instead of after decoding (0.15 s on bbb).
On two otherwise idle cores, bench/mining.py: bbb 99.8x real time, 1.20x decode-only; one-by-one
129.5x, 1.47x (peak 0.66 GB). With other jobs on the cores the encoder no longer overlaps decoding
and the ratio rises to about 2x.
"""

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

from videozero.evidence.shots import ContentScorer
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
# Frames decoded per block handed to the encoder when decoding and encoding overlap: one encoder batch,
# so encoding starts early and at most one block is left to encode once decoding ends (decoding bbb
# cost the same CPU, 1.5-1.7 s, in blocks of 16, of 32 or in one call).
ENCODER_BLOCK = 16
# Frames the encoder runs on at once. One core, 128 px, the inference copy of the network: batches of
# 16 ran at 2.6 ms a frame, 8 or 12 at 3.9, 24 at 3.2, 32 at 3.9, 48 at 6.6 (the activations of larger
# batches outgrow the caches). Frames to encode are gathered across blocks (reuse leaves blocks
# part-full) so that the encoder gets whole batches, all but the last.
ENCODER_BATCH = 16
TOP_K = 5
MOTION_SIDE = 64
# Frames near-identical to the last frame the encoder ran on take that frame's features and labels
# instead of being encoded: the mean absolute grey difference of their MOTION_SIDE thumbnails (0-1) is
# below REUSE_MEAN and at most REUSE_CHANGED of the thumbnail's pixels differ by more than REUSE_PIXEL.
# The second test keeps small events encoded: on bbb an animal entering the bottom of a still shot
# changed the mean by 0.0012 only (cosine 0.84 to the frame before) but 0.2-0.5% of the pixels by
# more than 0.1. Comparing with the last encoded frame, not the previous one, means slow drift still
# gets encoded. The module docstring says what reuse saves and costs on the real clips; with the pixel
# test at 0.2%, mean thresholds from 0.005 to 0.02 reused 40-43% of one-by-one's frames and 2.5-2.8%
# of bbb's, every reused frame at cosine >= 0.985 to its own features.
REUSE_MEAN = 0.01
REUSE_PIXEL = 0.1
REUSE_CHANGED = 0.002
# 2: features of near-identical frames are reused (REUSE_*); 3: content scores are kept. Entries of
# another version are recomputed.
FEATURES_VERSION = 3


FIELDS = ("timestamps", "pooled", "label_ids", "label_probs", "motion", "source", "content")


@dataclass
class FrameFeatures:
    """Features of every sampled frame of one video, aligned with its timestamps.

    `pooled` float32 [T, 1280] L2-normalised; `label_ids`/`label_probs` [T, k] top ImageNet classes;
    `motion` float32 [T] mean absolute difference to the previous sampled frame in [0, 1] (0 for the
    first frame); `source` int32 [T] the frame whose encoder output each frame carries (itself when it
    was encoded, an earlier near-identical frame when its features were reused); `content` float64 [T]
    PySceneDetect's content change to the previous sampled frame (what shots are cut on).
    """

    timestamps: np.ndarray
    pooled: np.ndarray
    label_ids: np.ndarray
    label_probs: np.ndarray
    motion: np.ndarray
    source: np.ndarray
    content: np.ndarray

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
        return {"version": np.array(FEATURES_VERSION), **{k: getattr(self, k) for k in FIELDS}}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> FrameFeatures | None:
        if int(arrays.get("version", -1)) != FEATURES_VERSION:
            return None
        try:
            return cls(*(arrays[k] for k in FIELDS))
        except KeyError:
            return None


def motion_size(h: int, w: int) -> tuple[int, int]:
    """(h, w) of the grey frames motion and reuse are judged on: short side at most MOTION_SIDE."""
    scale = min(1.0, MOTION_SIDE / min(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def _frame_changes(grey: torch.Tensor) -> np.ndarray:
    """Mean absolute difference of each grey frame but the first to the one before it, in [0, 1]."""
    return ((grey[1:] - grey[:-1]).abs().mean((1, 2)) / 255.0).numpy()


def near_identical(grey: torch.Tensor, reference: torch.Tensor) -> bool:
    """Whether a grey frame (0-255) is close enough to `reference` to take its features (REUSE_*).

    >>> a = torch.zeros(10, 200); b = a.clone(); b[0, :2] = 255  # 0.1% of the pixels change
    >>> near_identical(b, a), near_identical(b[:, :50], a[:, :50])  # 0.4%: an event, encode it
    (True, False)
    """
    diff = (grey - reference).abs()
    return (
        float(diff.mean()) < REUSE_MEAN * 255.0
        and float((diff > REUSE_PIXEL * 255.0).float().mean()) <= REUSE_CHANGED
    )


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


class BlockEncoder:
    """Features of a clip's frames handed over in order, a block at a time: grey frames at the motion
    size give the motion energy and decide which frames are near-identical to the last encoded one
    (those reuse its output), and the encoder runs on the others only.

    Motion energy is each frame's mean absolute grey difference to the frame before it, in [0, 1]
    (0 for the first), across block boundaries:

    >>> f = np.zeros((3, 8, 8, 3), np.uint8); f[2] = 255
    >>> enc = BlockEncoder(); enc.add(f[:2]); enc.add(f[2:])
    >>> np.concatenate(enc.motion).tolist()
    [0.0, 0.0, 1.0]
    """

    def __init__(self, reuse: bool = True) -> None:
        self.reuse = reuse
        self.seen = 0
        self.previous: torch.Tensor | None = None  # grey of the last frame seen
        self.reference: torch.Tensor | None = None  # grey of the last frame encoded
        self.reference_index = -1
        self.motion: list[np.ndarray] = []
        self.source: list[np.ndarray] = []
        self.content = ContentScorer()
        self.pending: list[np.ndarray] = []  # frames to encode, fewer than ENCODER_BATCH in all
        self.outputs: list[tuple[torch.Tensor, torch.Tensor]] = []

    def add(self, frames: np.ndarray) -> None:
        if len(frames) == 0:
            return
        grey = small_grey(frames, motion_size(*frames.shape[1:3]))
        if self.previous is None:
            self.motion.append(np.zeros(1, np.float32))
        self.motion.append(
            _frame_changes(grey if self.previous is None else torch.cat([self.previous[None], grey]))
        )
        self.previous = grey[-1]
        self.content.add(frames)
        index = np.arange(self.seen, self.seen + len(frames))
        source = index.copy()
        for k in range(len(frames)):
            if self.reuse and self.reference is not None and near_identical(grey[k], self.reference):
                source[k] = self.reference_index
            else:
                self.reference, self.reference_index = grey[k], int(index[k])
        encode = source == index
        if encode.any():
            self.pending.append(frames if encode.all() else frames[encode])
        self.source.append(source)
        self.seen += len(frames)
        self.encode(final=False)

    def encode(self, final: bool = True) -> None:
        """Run the encoder on the pending frames, in whole batches unless `final`."""
        count = sum(len(f) for f in self.pending)
        whole = count if final else count - count % ENCODER_BATCH
        if whole == 0:
            return
        todo = np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0]
        self.outputs.append(frame_encoder().pooled_and_logits(todo[:whole], ENCODER_SIZE, ENCODER_BATCH))
        self.pending = [todo[whole:]] if whole < count else []

    def features(self, clip: VideoClip) -> FrameFeatures:
        """The features of every frame added so far (all of `clip`'s, in order)."""
        self.encode()
        if len(clip) != self.seen:
            raise ValueError(f"{self.seen} frames were encoded for a clip of {len(clip)}")
        source = np.concatenate(self.source) if self.source else np.zeros(0, np.int64)
        if self.outputs:
            pooled = torch.cat([p for p, _ in self.outputs])
            logits = torch.cat([lg for _, lg in self.outputs])
            rows = torch.from_numpy(np.searchsorted(np.flatnonzero(source == np.arange(len(source))), source))
            pooled, logits = pooled[rows], logits[rows]
        else:
            pooled, logits = torch.zeros(0, FEATURE_DIM), torch.zeros(0, 1000)
        probs, ids = logits.softmax(-1).topk(min(TOP_K, logits.shape[-1]), dim=-1)
        motion = np.concatenate(self.motion).astype(np.float32) if self.motion else np.zeros(0, np.float32)
        return FrameFeatures(
            timestamps=np.asarray(clip.timestamps, np.float64),
            pooled=F.normalize(pooled, dim=-1).numpy().astype(np.float32),
            label_ids=ids.numpy().astype(np.int16),
            label_probs=probs.numpy().astype(np.float32),
            motion=motion,
            source=source.astype(np.int32),
            content=self.content.scores(),
        )


def compute_features(clip: VideoClip, reuse: bool = True) -> FrameFeatures:
    """Run the frozen frame encoder and the motion measure over a clip's sampled frames (with
    `reuse`, near-identical frames take the features of the last encoded one)."""
    encoder = BlockEncoder(reuse)
    with torch_threads(ENCODER_THREADS):
        for i in range(0, len(clip), ENCODER_BLOCK):
            encoder.add(clip.frames[i : i + ENCODER_BLOCK])
        encoder.encode()
    return encoder.features(clip)


def decode_with_features(path: str | Path, sampling: SamplingConfig) -> tuple[VideoClip, FrameFeatures]:
    """Decode a video and encode its frames at once: a worker thread encodes each block of frames
    while the next block is decoded (both release the GIL, so the two overlap on two cores). The
    decoder never waits for the encoder, and once decoding is done the encoder takes every core."""
    blocks: queue.Queue[np.ndarray | None] = queue.Queue()
    encoder = BlockEncoder()
    failure: list[BaseException] = []
    decoded = threading.Event()

    def encode() -> None:
        try:
            with torch_threads(ENCODER_THREADS):
                while (block := blocks.get()) is not None:
                    if decoded.is_set() and torch.get_num_threads() != ENCODER_THREADS_ALONE:
                        torch.set_num_threads(ENCODER_THREADS_ALONE)  # per thread: only this one
                    encoder.add(block)
                torch.set_num_threads(ENCODER_THREADS_ALONE)
                encoder.encode()
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
    return clip, encoder.features(clip)


def features_entry() -> str:
    """The cache entry name of features: it names everything that changes them besides the content and
    the sampling (encoder input size, version, reuse thresholds), so a changed setting never reads an
    entry computed under another (entries also carry FEATURES_VERSION, checked on load)."""
    return f"features-e{ENCODER_SIZE}-v{FEATURES_VERSION}-r{REUSE_MEAN:g}-{REUSE_PIXEL:g}-{REUSE_CHANGED:g}"


def cached_features(
    clip: VideoClip, content_hash: str, sampling: SamplingConfig, cache: VideoCache | None
) -> tuple[FrameFeatures, bool]:
    """Features of a clip, computed once per (content, sampling); returns (features, from cache)."""
    name = features_entry()
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
    name = features_entry()
    if cache is not None and cache.entry(content_hash, sampling, "frames").is_file():
        clip, _ = cached_clip(path, content_hash, sampling, cache)
        feats, _ = cached_features(clip, content_hash, sampling, cache)
        return clip, feats
    clip, feats = decode_with_features(path, sampling)
    if cache is not None:
        save_clip(cache, content_hash, sampling, clip)
        cache.save(content_hash, sampling, name, feats.arrays())
    return clip, feats
