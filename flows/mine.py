"""The `mine` flow: mine videos into the store (cached per video and sampling), for a UI deployment."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from pydantic import BaseModel, Field

from videozero.video.decode import MINING_SAMPLING, SamplingConfig


class MineParams(BaseModel):
    """What to mine and where the store is."""

    videos: list[str] = Field(
        default_factory=list, description="videos or folders (empty: the embedded samples)"
    )
    workdir: str = Field("videozero_work", description="store and frame cache")
    db: str | None = Field(None, description="store URL (default: sqlite:///<workdir>/store.db)")
    fps: float = Field(MINING_SAMPLING.fps, gt=0, le=120)
    max_frames: int = Field(MINING_SAMPLING.max_frames, ge=1, le=4096)


@flow(name="videozero-mine", log_prints=True)
def mine(params: MineParams) -> dict:
    """Mine evidence segments of the videos; a table artifact lists every input with its outcome."""
    from pathlib import Path

    from videozero.stages.mine import mine_videos
    from videozero.stages.run import store_at
    from videozero.video.samples import default_clips

    logger = get_run_logger()
    workdir = Path(params.workdir)
    inputs = [Path(v) for v in params.videos] or default_clips(workdir)
    store = store_at(params.db, workdir)
    try:
        sampling = SamplingConfig(
            fps=params.fps, max_frames=params.max_frames, short_side=MINING_SAMPLING.short_side
        )
        summary = mine_videos(store, inputs, sampling, cache_dir=workdir / "cache")
    finally:
        store.dispose()
    rows = [
        {"video": r.path, "status": r.status, "duration_s": r.duration_s, "shots": r.shots, "segments": r.segments,
         "seconds": round(r.seconds, 2), "error": r.error}
        for r in summary.results
    ]  # fmt: skip
    create_table_artifact(rows, key="videozero-mine", description=f"mined at {summary.sampling}")
    logger.info(
        "mined %d, skipped %d, errors %d",
        summary.count("mined"),
        summary.count("skipped"),
        len(summary.errors),
    )
    return {
        "mined": summary.count("mined"),
        "skipped": summary.count("skipped"),
        "errors": len(summary.errors),
    }
