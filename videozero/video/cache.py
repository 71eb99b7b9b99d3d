"""The on-disk cache of decoded frames and frame features, keyed by (video content hash, sampling key).

One decode per video per run configuration: mining, question writing and the solver all load a video's
sampled frames through `cached_clip`. Entries are `.npz` files written to a temporary name and renamed
into place, so a killed process leaves either a whole entry or none; an unreadable entry is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
import zipfile
from pathlib import Path

import numpy as np

from videozero.errors import VideozeroError
from videozero.video.decode import SamplingConfig, VideoClip, check_readable, decode_video

HASH_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """sha256 hex digest of a file's bytes, read in chunks (the identity of a video in the store)."""
    path = Path(path)
    check_readable(path)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(HASH_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise VideozeroError(
            f"{path} cannot be read ({exc.strerror}): check the file and its disk."
        ) from None
    return digest.hexdigest()


class VideoCache:
    """A folder of cache entries: `<root>/<hash[:2]>/<hash>/<sampling key>/<name>.npz`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def entry(self, content_hash: str, sampling: SamplingConfig, name: str) -> Path:
        return self.root / content_hash[:2] / content_hash / sampling.key / f"{name}.npz"

    def load(self, content_hash: str, sampling: SamplingConfig, name: str) -> dict[str, np.ndarray] | None:
        """The arrays of an entry, or None if it is absent or unreadable."""
        path = self.entry(content_hash, sampling, name)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            return None

    def save(
        self, content_hash: str, sampling: SamplingConfig, name: str, arrays: dict[str, np.ndarray]
    ) -> Path:
        """Write an entry atomically (temporary file, then rename)."""
        path = self.entry(content_hash, sampling, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with tmp.open("wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise VideozeroError(
                f"Cannot write the cache entry {path} ({exc.strerror}): free disk space or pass another --workdir."
            ) from None
        return path


def _clip_arrays(clip: VideoClip) -> dict[str, np.ndarray]:
    meta = {
        "path": clip.path,
        "duration_s": clip.duration_s,
        "native_fps": clip.native_fps,
        "native_size": list(clip.native_size),
        "frame_count": clip.frame_count,
    }
    return {
        "frames": clip.frames,
        "timestamps": clip.timestamps,
        "indices": clip.indices,
        "meta": np.array(json.dumps(meta)),
    }


def _clip_from_arrays(arrays: dict[str, np.ndarray], path: str | Path) -> VideoClip | None:
    try:
        meta = json.loads(str(arrays["meta"]))
        return VideoClip(
            path=str(path),
            frames=arrays["frames"],
            timestamps=arrays["timestamps"],
            indices=arrays["indices"],
            duration_s=float(meta["duration_s"]),
            native_fps=float(meta["native_fps"]),
            native_size=(int(meta["native_size"][0]), int(meta["native_size"][1])),
            frame_count=int(meta["frame_count"]),
        )
    except (KeyError, ValueError, TypeError, IndexError):
        return None


def cached_clip(
    path: str | Path, content_hash: str, sampling: SamplingConfig, cache: VideoCache | None
) -> tuple[VideoClip, bool]:
    """The sampled frames of a video, decoded at most once per (content, sampling); returns
    (clip, whether it came from the cache)."""
    if cache is not None:
        arrays = cache.load(content_hash, sampling, "frames")
        clip = _clip_from_arrays(arrays, path) if arrays is not None else None
        if clip is not None:
            return clip, True
    clip = decode_video(path, sampling)
    if cache is not None:
        save_clip(cache, content_hash, sampling, clip)
    return clip, False


def save_clip(cache: VideoCache, content_hash: str, sampling: SamplingConfig, clip: VideoClip) -> None:
    """Store a decoded clip as the cache entry `cached_clip` reads."""
    cache.save(content_hash, sampling, "frames", _clip_arrays(clip))


def load_clip(path: str | Path, sampling: SamplingConfig, cache: VideoCache | None = None) -> VideoClip:
    """A video's sampled frames with their true timestamps, through the frame cache when one is given."""
    if cache is None:
        return decode_video(path, sampling)
    clip, _ = cached_clip(path, file_sha256(path), sampling, cache)
    return clip
