"""The question stage: propose on the training videos at the curriculum's levels and mix, verify with
the current solver, store every candidate with its verdict."""

from __future__ import annotations

from typing import Any

from store import Store
from store.checkpoints import current_questioner, current_solver
from store.runs import round_curriculum
from videozero.curriculum import CurriculumScheduler, CurriculumState
from videozero.evidence.views import whole_video
from videozero.memory import releasing_memory
from videozero.models.engines.transformers_engine import load_engine
from videozero.progress import ProgressReport
from videozero.questioner.model_writer import model_writer
from videozero.questioner.round import question_round
from videozero.questioner.writer import WriterConfig
from videozero.run_config import RunConfig, verify_settings
from videozero.stages.run import open_run_store, round_id_of, stage_record
from videozero.video.cache import VideoCache


def curriculum_state(store: Store, run_id: int, round_index: int, config: RunConfig) -> CurriculumState:
    """The curriculum the round runs at: the state stored by the previous round, else the start."""
    if round_index > 0:
        prev = round_curriculum(store, run_id, round_index - 1)
        if prev and prev.get("families"):
            return CurriculumState.model_validate(prev)
    return CurriculumScheduler(config.curriculum).initial(list(config.questioner.families))


@releasing_memory
def question_stage(
    config: RunConfig, run_id: int, round_index: int, progress: ProgressReport | None = None
) -> dict[str, Any]:
    """The questioner phase: propose on the training videos at the curriculum's levels and mix, verify
    with the current solver, store everything."""
    store = open_run_store(config)
    round_id = round_id_of(store, run_id, round_index)
    out: dict[str, Any] = {}
    with stage_record(store, round_id, "question") as box:
        if box is None:
            return out
        state = curriculum_state(store, run_id, round_index, config)
        ckpt, path = current_solver(store, run_id, round_index)
        engine = load_engine(path)
        qcfg = config.questioner.model_copy(
            update={
                "templates": config.writer != "model",
                "verify": verify_settings(config),
                "seed": config.seed,
            }
        )
        cache_dir = config.workdir_path / "cache"
        writer = None
        if config.writer in ("model", "both"):
            q_path = current_questioner(store, run_id, round_index) or path
            q_engine = engine if q_path == path else load_engine(q_path)
            writer = model_writer(
                q_engine,
                WriterConfig(max_new_tokens=config.questioner_training.max_new_tokens),
                qcfg.model_spans_per_video,
                qcfg.solver_sampling.sampling,
                VideoCache(cache_dir),
            )
        summary = question_round(
            store,
            run_id,
            round_index,
            engine,
            ckpt,
            qcfg,
            state.levels(),
            state.weights(),
            writer,
            cache_dir,
            progress,
            evidence_transform=None if config.ablation.evidence_anchoring else whole_video,
        )
        out = {
            "proposed": sum(sum(c.values()) for c in summary.counts.values()),
            "accepted": sum(c["accepted"] for c in summary.counts.values()),
            "verified_by": ckpt,
        }
        box.append(dict(out))
    return out
