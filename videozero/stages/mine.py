"""The mine stage: mine videos into the store (`mine_videos`: cached per video, once per content and
sampling; what `videozero mine` and the flows call) and attach the run's videos with a split by video."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store import Store
from store.runs import attach_videos, rich_videos, run_video_ids
from store.videos import mined_video, point_video_at, record_mining_error, write_mined_video
from videozero.errors import VideozeroError
from videozero.evidence.features import cached_clip_and_features
from videozero.evidence.mine import (
    DEFAULT_SAMPLING,
    MiningSummary,
    VideoResult,
    collect_videos,
    mine_clip,
    system_error,
)
from videozero.memory import releasing_memory
from videozero.progress import ProgressReport
from videozero.run_config import RunConfig
from videozero.stages.fanout import Executor, executor_of, fan_out, record, store_url, worker_store
from videozero.stages.run import open_run_store, round_id_of, stage_record
from videozero.video.cache import VideoCache, file_sha256
from videozero.video.decode import SamplingConfig
from videozero.video.samples import default_clips, default_heldout_clips, generated_scenes


@releasing_memory
def mine_stage(config: RunConfig, run_id: int, progress: ProgressReport | None = None) -> dict[str, Any]:
    """Mine the run's videos (cached per video) and attach them with a train/held-out split; the
    generated validation and warm-up scenes get their fixed splits."""
    store = open_run_store(config)
    round_id = round_id_of(store, run_id, 0)
    out: dict[str, Any] = {}
    with stage_record(store, round_id, "mine") as box:
        if box is None:
            with store.session() as s:
                return {
                    "videos": len(run_video_ids(s, run_id, "train") + run_video_ids(s, run_id, "heldout"))
                }
        inputs = [Path(v) for v in config.videos] or default_clips(config.workdir_path)
        missing = [str(p) for p in inputs if not p.exists()]
        if missing and len(missing) == len(inputs):
            raise VideozeroError(f"none of the videos exist ({', '.join(missing[:3])}): check --videos.")
        cache_dir = config.workdir_path / "cache"
        fan = {"executor": executor_of(config), "run_id": run_id}
        summary = mine_videos(store, inputs, cache_dir=cache_dir, progress=progress, **fan)
        held_summary = mine_videos(
            store, _heldout_inputs(config), cache_dir=cache_dir, progress=progress, **fan
        )
        held = list(dict.fromkeys(_mined_ids(held_summary)))
        ids = [v for v in _mined_ids(summary) if v not in held]
        errors = [*summary.errors, *held_summary.errors]
        if not ids or len(ids) + len(held) < 2:
            raise VideozeroError(
                f"only {len(ids) + len(held)} video could be mined ({len(errors)} failed): a run needs "
                "at least two, one to train on and one held out."
            )
        fixed: dict[int, str] = {}
        for split, paths in _generated_inputs(config).items():
            found = mine_videos(store, paths, cache_dir=cache_dir, progress=progress, **fan)
            errors += found.errors
            fixed |= {v: split for v in _mined_ids(found) if v not in held and v not in ids}
        splits = attach_videos(
            store,
            run_id,
            ids,
            config.heldout_fraction,
            eligible=rich_videos(store, ids),
            heldout=held,
            fixed=fixed,
        )
        out = {
            "videos": sum(v in ("train", "heldout") for v in splits.values()),
            "heldout": sum(v == "heldout" for v in splits.values()),
            "validation": sum(v == "validation" for v in splits.values()),
            "warmup": sum(v == "warmup" for v in splits.values()),
            "errors": [f"{r.path}: {r.error}" for r in errors],
        }
        box.append(dict(out))
    return out


def mine_videos(
    store: Store,
    paths: Sequence[str | Path],
    sampling: SamplingConfig | None = None,
    cache_dir: str | Path | None = None,
    progress: ProgressReport | None = None,
    executor: Executor | None = None,
    run_id: int | None = None,
) -> MiningSummary:
    """Mine every video under `paths` into `store`, one task per video on `executor` (default: in this
    process); never raises for a bad file (see the results)."""
    sampling = sampling or DEFAULT_SAMPLING
    executor = executor or Executor()
    files, problems = collect_videos(paths)
    summary = MiningSummary(sampling=sampling.key)
    for problem in problems:
        record_mining_error(store, Path(problem.path).absolute(), None, problem.error or "")
        summary.results.append(problem)
    if not files:
        return summary
    cache = str(cache_dir) if cache_dir is not None else None
    tasks = [MineTask(store_url(store), str(f), sampling, cache) for f in files]

    def step(i: int, n: int) -> None:
        if progress is not None:
            progress("mining", i, n, files[i].name if i < n else "")

    step(0, len(files))
    results = fan_out(executor, mine_task, tasks, step, store)
    summary.results += [r.value for r in results]
    record(store, run_id, "mine", executor, [str(f) for f in files], results)
    return summary


@dataclass(frozen=True)
class MineTask:
    """One video to mine: where the store is, the file, the sampling, the frame cache's folder."""

    db_url: str
    path: str
    sampling: SamplingConfig
    cache_dir: str | None


def mine_task(task: MineTask) -> VideoResult:
    """Mine one video into the store (a fanned-out task: in this process or on a Ray worker)."""
    cache = VideoCache(task.cache_dir) if task.cache_dir is not None else None
    return mine_video(worker_store(task.db_url), Path(task.path), task.sampling, cache)


def mine_video(store: Store, path: Path, sampling: SamplingConfig, cache: VideoCache | None) -> VideoResult:
    """Mine one file (or skip it if it is already mined at `sampling`); errors become a result. The
    video's row and all its segments are written in one transaction (under its absolute path, so the
    store finds it from any directory)."""
    path = Path(path).absolute()
    started = time.perf_counter()
    digest: str | None = None
    try:
        digest = file_sha256(path)
        existing = mined_video(store, digest, sampling.key)
        if existing is not None:
            video_id, duration, shots, segments = existing
            point_video_at(store, video_id, path)
            return VideoResult(
                str(path), "skipped", video_id, duration, shots, segments, time.perf_counter() - started
            )
        clip, feats = cached_clip_and_features(path, digest, sampling, cache)
        if len(clip) == 0:
            raise VideozeroError(f"{path} holds no video frames: replace it with a complete video file.")
        segs = mine_clip(clip, feats)
        width, height = clip.native_size
        facts = {
            "duration_s": clip.duration_s,
            "fps": clip.native_fps,
            "frame_count": clip.frame_count,
            "width": width,
            "height": height,
        }
        rows = [
            {
                "level": seg.level,
                "start_s": seg.start_s,
                "end_s": seg.end_s,
                "saliency": seg.saliency,
                "parts": seg.parts,
                "labels": seg.labels,
                "parent": seg.parent,
            }
            for seg in segs
        ]
        video_id, written = write_mined_video(store, path, digest, facts, sampling.key, rows)
    except (VideozeroError, OSError, MemoryError) as exc:
        message = str(exc) if isinstance(exc, VideozeroError) else system_error(path, exc)
        record_mining_error(store, path, digest, message)
        return VideoResult(str(path), "error", seconds=time.perf_counter() - started, error=message)
    status = "mined" if written else "skipped"
    shots = sum(s.level == "shot" for s in segs)
    return VideoResult(
        str(path), status, video_id, clip.duration_s, shots, len(segs), time.perf_counter() - started
    )


def _mined_ids(summary: MiningSummary) -> list[int]:
    return [r.video_id for r in summary.results if r.status != "error" and r.video_id is not None]


def _generated_inputs(config: RunConfig) -> dict[str, list[Path]]:
    """The generated scenes of the run's validation set and of its warm-up's extra targets."""
    w = config.learner.warmup
    warm = w.scenes if w.steps and w.source in ("families", "both") else 0
    return {
        "validation": generated_scenes(config.workdir_path, "validation_scene", config.validation_scenes),
        "warmup": generated_scenes(config.workdir_path, "warmup_scene", warm),
    }


def _heldout_inputs(config: RunConfig) -> list[Path]:
    """The videos the run always holds out: `heldout_videos`, else the embedded held-out scenes when
    the run uses the embedded clips."""
    if config.heldout_videos is not None:
        paths = [Path(v) for v in config.heldout_videos]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise VideozeroError(f"held-out video {missing[0]} does not exist: check --heldout-videos.")
        return paths
    return [] if config.videos else default_heldout_clips(config.workdir_path)
