"""The mine stage: mine the run's videos (cached per video) and attach them with a split by video."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from store.runs import attach_videos, rich_videos, run_video_ids
from videozero.errors import VideozeroError
from videozero.evidence.mine import MiningSummary, mine_videos
from videozero.memory import releasing_memory
from videozero.progress import ProgressReport
from videozero.run_config import RunConfig
from videozero.stages.run import open_run_store, round_id_of, stage_record
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
        summary = mine_videos(store, inputs, cache_dir=cache_dir, progress=progress)
        held_summary = mine_videos(store, _heldout_inputs(config), cache_dir=cache_dir, progress=progress)
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
            found = mine_videos(store, paths, cache_dir=cache_dir, progress=progress)
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
