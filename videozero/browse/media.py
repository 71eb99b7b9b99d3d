"""The files the browser reads: frame thumbnails cut on demand from the frame cache (or, without a cache
entry, from the video file), kept as JPEGs once made, behind a gate that lets no other file be read.

The gate allows exactly the video files the store names and files under the frame-cache folders; a
path is resolved (links followed) before it is checked, so neither `..` nor a link leads out.
"""

from __future__ import annotations

import io
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from videozero.errors import VideozeroError
from videozero.video.cache import VideoCache
from videozero.video.decode import MINING_SAMPLING, decode_video
from videozero.video.query_images import nearest_frames

THUMB_WIDTH = 240
CLIPS_KEPT = 1  # decoded videos kept in memory: a question page asks for several frames of one video (a
# long one, 1024 mining frames, holds about 275 MB)


class Refused(VideozeroError):
    """A file the browser may not read, or that is not there."""


class FileGate:
    """Which files may be read: the store's video files and anything under the cache folders."""

    def __init__(self, video_paths: Iterable[str], cache_roots: Iterable[Path]) -> None:
        self.files = {self._resolve(Path(p)) for p in video_paths}
        self.files.discard(None)
        self.roots = [
            r for r in (self._resolve(Path(p)) for p in cache_roots) if r is not None and r.is_dir()
        ]

    @staticmethod
    def _resolve(path: Path) -> Path | None:
        try:
            return path.expanduser().resolve(strict=False)
        except (OSError, RuntimeError):
            return None

    def allow(self, video_path: str) -> None:
        """Add a video file the store names (read from its row when a frame of it is asked for)."""
        resolved = self._resolve(Path(video_path))
        if resolved is not None:
            self.files.add(resolved)

    def check(self, path: str | Path) -> Path:
        """The resolved `path` if it may be read, else Refused (saying nothing of what is there)."""
        resolved = self._resolve(Path(path))
        if resolved is None or not (
            resolved in self.files or any(resolved.is_relative_to(r) for r in self.roots)
        ):
            raise Refused(f"{path} is not a file of this store's videos or frame cache.")
        return resolved

    def writable_root(self) -> Path | None:
        """The first cache folder thumbnails can be written under, if any."""
        return next((r for r in self.roots if os.access(r, os.W_OK)), None)


@dataclass(frozen=True)
class Frames:
    """A video's sampled frames and their true times (the frames mining and the questions used)."""

    timestamps: np.ndarray
    frames: np.ndarray


class Thumbnails:
    """JPEG thumbnails of a video's mined frames, by time; made once, then read from disk or memory."""

    def __init__(self, gate: FileGate, width: int = THUMB_WIDTH) -> None:
        self.gate = gate
        self.width = width
        self._clips: OrderedDict[str, Frames] = OrderedDict()
        self._memory: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def _frames(self, path: str, content_hash: str | None) -> Frames:
        key = content_hash or path
        with self._lock:
            if key in self._clips:
                self._clips.move_to_end(key)
                return self._clips[key]
        frames = self._from_cache(content_hash) if content_hash else None
        if frames is None:
            video = self.gate.check(path)
            if not video.is_file():
                raise Refused(f"{path} is not there any more and the frame cache holds none of its frames.")
            clip = decode_video(video, MINING_SAMPLING)
            frames = Frames(clip.timestamps, clip.frames)
        with self._lock:
            self._clips[key] = frames
            while len(self._clips) > CLIPS_KEPT:
                self._clips.popitem(last=False)
        return frames

    def _from_cache(self, content_hash: str) -> Frames | None:
        for root in self.gate.roots:
            cache = VideoCache(root)
            entry = cache.entry(content_hash, MINING_SAMPLING, "frames")
            try:
                self.gate.check(entry)
            except Refused:
                continue
            arrays = cache.load(content_hash, MINING_SAMPLING, "frames")
            if arrays is not None and "frames" in arrays and "timestamps" in arrays:
                return Frames(arrays["timestamps"], arrays["frames"])
        return None

    def _thumb_file(self, content_hash: str | None, ms: int) -> Path | None:
        root = self.gate.writable_root()
        if root is None or not content_hash:
            return None
        return root / "thumbnails" / content_hash[:2] / content_hash / f"{ms}ms-{self.width}.jpg"

    def jpeg(self, path: str, content_hash: str | None, t: float) -> bytes:
        """The thumbnail of the mined frame nearest `t` seconds, as JPEG bytes: from memory, else from the
        thumbnails folder of the cache, else cut from the frames (and kept in both)."""
        key, ms = content_hash or path, max(0, round(t * 1000))
        with self._lock:
            if (key, ms) in self._memory:
                self._memory.move_to_end((key, ms))
                return self._memory[(key, ms)]
        file = self._thumb_file(content_hash, ms)
        if file is not None and file.is_file():
            data = self.gate.check(file).read_bytes()
        else:
            frames = self._frames(path, content_hash)
            data = encode_jpeg(frames.frames[nearest_frames(frames.timestamps, [t])[0]], self.width)
            if file is not None:
                write_atomic(file, data)
        with self._lock:
            self._memory[(key, ms)] = data
            while len(self._memory) > 512:
                self._memory.popitem(last=False)
        return data


def encode_jpeg(frame: np.ndarray, width: int) -> bytes:
    """An RGB frame scaled to `width` pixels wide, as JPEG bytes."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(frame[..., :3]).astype(np.uint8))
    if image.width > width:
        image = image.resize((width, max(1, round(image.height * width / image.width))), Image.BILINEAR)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary name (a reader never sees half a file); a folder that
    cannot be written leaves the thumbnail in memory only."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        return
