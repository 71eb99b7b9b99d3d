"""The evaluation stage: held-out and validation figures of a checkpoint, and the paper's diagnostics on
a round's accepted questions."""

from __future__ import annotations

from typing import Any

from store.checkpoints import VALIDATION_SPLIT, checkpoint_of, latest_solver
from videozero.evaluation.heldout import evaluate_heldout, probe_round
from videozero.memory import releasing_memory
from videozero.models.engines.transformers_engine import load_engine
from videozero.run_config import RunConfig, evaluation_settings
from videozero.stages.run import open_run_store, round_id_of, stage_record


@releasing_memory
def evaluate_checkpoint(config: RunConfig, run_id: int, checkpoint_id: int) -> dict[str, float]:
    """Held-out figures of one checkpoint, and its validation figures unless it is the base (answers
    already stored are not asked again)."""
    store = open_run_store(config)
    row = checkpoint_of(store, checkpoint_id)
    ecfg = evaluation_settings(config)
    engine = load_engine(row.path)
    figures = evaluate_heldout(engine, store, run_id, checkpoint_id, ecfg)
    if row.stage != "base":  # the base writes no answer format: nothing to choose it on
        evaluate_heldout(engine, store, run_id, checkpoint_id, ecfg, split=VALIDATION_SPLIT)
    return figures


@releasing_memory
def eval_stage(config: RunConfig, run_id: int, round_index: int) -> dict[str, Any]:
    """Held-out evaluation of the round's solver and the paper's diagnostics on its accepted questions."""
    store = open_run_store(config)
    round_id = round_id_of(store, run_id, round_index)
    out: dict[str, Any] = {}
    with stage_record(store, round_id, "eval") as box:
        if box is None:
            return out
        ckpt, path = latest_solver(store, run_id, round_index + 1)
        ecfg = evaluation_settings(config)
        engine = load_engine(path)
        figures = evaluate_heldout(engine, store, run_id, ckpt, ecfg)
        valid = evaluate_heldout(engine, store, run_id, ckpt, ecfg, split=VALIDATION_SPLIT)
        out = {
            "checkpoint": ckpt,
            "accuracy": figures.get("accuracy"),
            "mIoU": figures.get("mIoU"),
            "validation_accuracy": valid.get("accuracy"),
        }
        if config.eval.diagnostics:
            dcfg = ecfg.model_copy(update={"limit": config.eval.diagnostics_limit})
            diag = probe_round(engine, store, run_id, round_id, ckpt, dcfg)
            out |= {k: diag.get(k) for k in ("video_dependency", "key_necessity", "key_specificity")}
        box.append(dict(out))
    return out
