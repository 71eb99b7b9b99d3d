"""Mined evidence read back for the loop's stages: a stored video's segments from the store, its frames
and features from the mining cache (nothing is recomputed)."""

from __future__ import annotations

from pathlib import Path

from store import Store
from store.tables import Video
from store.videos import video_segments
from videozero.errors import VideozeroError
from videozero.evidence.mine import DEFAULT_SAMPLING, load_evidence
from videozero.evidence.views import EvidenceLoader, SegmentView, VideoEvidence, labels_of


def load_video_evidence(store: Store, video_id: int, cache_dir: str | Path | None = None) -> VideoEvidence:
    """A stored, mined video's evidence, from the store's segments and the mining cache."""
    with store.session() as session:
        video = session.get(Video, video_id)
        if video is None:
            raise VideozeroError(
                f"video {video_id} is not in the store: mine it first with `videozero mine`."
            )
        rows = video_segments(session, video_id, DEFAULT_SAMPLING.key)
        if video.status != "ok" or not rows:
            raise VideozeroError(
                f"{video.path} has no mined segments (status {video.status}): run `videozero mine` on it."
            )
        segments = [
            SegmentView(
                r.id,
                r.level,
                r.start_s,
                r.end_s,
                r.saliency,
                dict(r.saliency_parts or {}),
                labels_of(r.labels),
            )
            for r in rows
        ]
        path, content_hash, stored_duration = video.path, video.content_hash, video.duration_s
    clip, feats = load_evidence(path, content_hash, DEFAULT_SAMPLING, cache_dir)
    duration = float(stored_duration or clip.duration_s)
    return VideoEvidence(
        video_id,
        path,
        duration,
        clip.frames,
        clip.timestamps,
        feats.pooled,
        feats.motion,
        segments,
        content_hash,
    )


def evidence_loader(store: Store, cache_dir: str | Path | None = None) -> EvidenceLoader:
    """`load_video_evidence` over this store and cache, as the questioner's functions take it."""
    return lambda video_id: load_video_evidence(store, video_id, cache_dir)
