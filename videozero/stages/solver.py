"""The solver stage: GRPO of the solver on the round's accepted questions, saved and recorded."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from store import Store
from store.checkpoints import checkpoint_row, current_solver
from store.questions import accepted_training_questions
from videozero.memory import releasing_memory
from videozero.questioner.round import VideoViews, candidate_of, solver_question
from videozero.run_config import RunConfig
from videozero.solver.grpo_config import GRPOConfig
from videozero.solver.round import train_solver_round
from videozero.stages.evidence import evidence_loader
from videozero.stages.external import external_round
from videozero.stages.run import open_run_store, round_id_of, stage_record


def solver_settings(config: RunConfig, round_index: int) -> GRPOConfig:
    """The round's GRPO settings: seeded per round; no alignment reward when the ablation turns it off."""
    gcfg = config.solver
    if not config.ablation.use_alignment:
        gcfg = gcfg.model_copy(update={"weights": gcfg.weights.model_copy(update={"alpha": 0.0})})
    return gcfg.model_copy(update={"seed": config.seed * 1009 + round_index})


@releasing_memory
def solver_stage(
    config: RunConfig, run_id: int, round_index: int, progress: Callable | None = None
) -> dict[str, Any]:
    """GRPO of the solver on the round's accepted questions; the checkpoint is saved and recorded."""
    store = open_run_store(config)
    round_id = round_id_of(store, run_id, round_index)
    out: dict[str, Any] = {}
    with stage_record(store, round_id, "solver") as box:
        if box is None:
            return out
        ckpt, path = current_solver(store, run_id, round_index)
        if config.solver.backend != "local":
            out = _external_stage(store, config, run_id, round_id, round_index, ckpt, path)
            box.append(dict(out))
            return out
        questions = accepted_solver_questions(
            store, run_id, round_id, config.questioner.solver_sampling.sampling, config.workdir_path / "cache"
        )
        if not questions:
            box.append({"status": "skipped", "reason": "no accepted questions", "from": ckpt})
            return {"skipped": "no accepted questions"}
        result = train_solver_round(
            path,
            questions,
            config.run_dir / f"round-{round_index}" / "solver",
            solver_settings(config, round_index),
            progress=progress,
        )
        new = checkpoint_row(store, result.path, "grpo", run_id=run_id, round_id=round_id, base_model=path)
        steps = result.report.steps
        out = {
            "checkpoint": new,
            "from": ckpt,
            "questions": len(questions),
            "steps": len(steps),
            "reward_first": round(steps[0].reward, 4) if steps else None,
            "reward_last": round(steps[-1].reward, 4) if steps else None,
        }
        zooms = [x.zoom for x in steps if x.zoom is not None]
        if zooms:  # the zoom-in reward: its mean and its cost
            out["zoom_accuracy"] = round(sum(zooms) / len(zooms), 4)
            out["seconds_zoom"] = round(sum(x.seconds_zoom for x in steps), 1)
        calls = [x.tool_calls for x in steps if x.tool_calls is not None]
        if calls:  # the zoom tool: calls per rollout
            out["tool_calls"] = round(sum(calls) / len(calls), 4)
        box.append(dict(out))
    return out


def _external_stage(
    store: Store, config: RunConfig, run_id: int, round_id: int, round_index: int, ckpt: int, path: str
) -> dict[str, Any]:
    """The round on verl or OpenRLHF (`stages/external.py`): its checkpoint recorded as the round's."""
    gcfg = solver_settings(config, round_index)
    ext = external_round(store, config, config.run_name, round_index, path, gcfg)
    out: dict[str, Any] = {"backend": gcfg.backend, "from": ckpt, "questions": ext.questions}
    out["folder"] = str(ext.folder)
    if ext.checkpoint is None:  # a dry run: data and command written, the round keeps its solver
        return out | {
            "status": "skipped",
            "reason": "dry run: the data and command are written, nothing trained",
        }
    new = checkpoint_row(
        store, str(ext.checkpoint), "grpo", run_id=run_id, round_id=round_id, base_model=path
    )
    return out | {"checkpoint": new}


def accepted_solver_questions(
    store: Store, run_id: int, round_id: int, sampling, cache_dir: str | Path | None = None
) -> list:
    """The round's accepted training questions as the solver trainer takes them: each request holds the
    video at the solver's sampling and the query images cut from the mined frames."""
    with store.session() as s:
        rows = accepted_training_questions(s, run_id, round_id)
        items = [(q.id, q.video_id, candidate_of(q)) for q in rows]
    views = VideoViews(evidence_loader(store, cache_dir), sampling, cache_dir)
    return [solver_question(c, *views(vid), question_id=qid) for qid, vid, c in items]
