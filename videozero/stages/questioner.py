"""The questioner stage: GRPO of the model writer on r_Q against the round's frozen solver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from store import Store
from store.checkpoints import checkpoint_row, current_questioner, current_solver
from store.runs import run_video_ids
from videozero.memory import releasing_memory
from videozero.models.engines.transformers_engine import load_engine
from videozero.models.prompt import VideoInput
from videozero.questioner.training import WriterVideo, train_questioner_round
from videozero.run_config import RunConfig
from videozero.stages.evidence import load_video_evidence
from videozero.stages.run import open_run_store, round_id_of, stage_record
from videozero.video.cache import VideoCache, load_clip
from videozero.video.decode import SamplingConfig


def writer_videos(store: Store, run_id: int, sampling: SamplingConfig, cache_dir: Path) -> list[WriterVideo]:
    """The run's training videos as the questioner trainer needs them (evidence + the solver's view)."""
    cache = VideoCache(cache_dir)
    with store.session() as s:
        ids = run_video_ids(s, run_id, "train")
    out = []
    for vid in ids:
        ev = load_video_evidence(store, vid, cache_dir)
        out.append(WriterVideo(ev, VideoInput.from_clip(load_clip(ev.path, sampling, cache))))
    return out


@releasing_memory
def questioner_stage(config: RunConfig, run_id: int, round_index: int) -> dict[str, Any]:
    """GRPO of the model writer on r_Q against the round's frozen solver (only when the model writes)."""
    store = open_run_store(config)
    round_id = round_id_of(store, run_id, round_index)
    out: dict[str, Any] = {}
    with stage_record(store, round_id, "questioner") as box:
        if box is None:
            return out
        if config.writer == "template" or config.questioner_training.steps == 0:
            box.append({"status": "skipped", "reason": "templates only"})
            return {"skipped": "templates only"}
        _, solver_path = current_solver(store, run_id, round_index)
        q_path = current_questioner(store, run_id, round_index) or solver_path
        qt = config.questioner_training.model_copy(
            update={
                "verify": config.questioner_training.verify.model_copy(
                    update={"use_r_dep": config.ablation.use_r_dep}
                ),
                "seed": config.seed * 1013 + round_index,
            }
        )
        sampling = config.questioner.solver_sampling.sampling
        videos = writer_videos(store, run_id, sampling, config.workdir_path / "cache")
        path, report = train_questioner_round(
            q_path,
            load_engine(solver_path),
            videos,
            config.run_dir / f"round-{round_index}" / "questioner",
            qt,
        )
        ckpt = checkpoint_row(
            store, path, "grpo", role="questioner", run_id=run_id, round_id=round_id, base_model=q_path
        )
        out = {
            "checkpoint": ckpt,
            "writes": sum(s.writes for s in report.steps),
            "parsed": sum(s.parsed for s in report.steps),
            "mean_r_q": round(sum(s.mean_r_q for s in report.steps) / max(1, len(report.steps)), 4),
        }
        box.append(dict(out))
    return out
