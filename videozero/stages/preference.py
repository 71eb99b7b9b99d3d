"""The preference stage: the round's factorized preference pairs (D2VLM), always built and stored, and,
when `preference.enabled`, DPO of the round's solver on them, saved as the round's `preference`
checkpoint (what the round's evaluation and the next round then use)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from store import Store
from store.checkpoints import checkpoint_row, latest_solver
from store.preferences import replace_round_preferences, round_pair_inputs
from videozero.memory import releasing_memory
from videozero.models.loader import load_model
from videozero.run_config import RunConfig
from videozero.solver.dpo import DPOStep, DPOTrainer, PairExample
from videozero.solver.preference_pairs import PreferencePair, factor_counts, stored_question_pairs
from videozero.solver.training import save_checkpoint
from videozero.stages.run import open_run_store, round_id_of, stage_record
from videozero.stages.solver import accepted_solver_questions


def build_round_pairs(store: Store, config: RunConfig, run_id: int, round_index: int) -> list[PreferencePair]:
    """Build and store the round's pairs (in place of any stored before); returns them."""
    round_id = round_id_of(store, run_id, round_index)
    with store.session() as s:
        rows = round_pair_inputs(s, run_id, round_id)
    per = config.preference.pairs_per_question
    seed = (config.seed, round_index)
    pairs = [p for row in rows for p in stored_question_pairs(row, per, seed, config.solver.label_mode)]
    with store.write() as s:
        replace_round_preferences(s, run_id, round_id, [_row(p) for p in pairs])
    return pairs


def _row(pair: PreferencePair) -> dict[str, Any]:
    fields = asdict(pair)
    fields["rejected_evidence"] = [list(span) for span in fields.pop("rejected_spans")]
    return fields


@releasing_memory
def preference_stage(
    config: RunConfig, run_id: int, round_index: int, progress: Callable[[DPOStep], None] | None = None
) -> dict[str, Any]:
    """The round's pairs; with `preference.enabled`, DPO from the round's solver, saved and recorded."""
    store = open_run_store(config)
    round_id = round_id_of(store, run_id, round_index)
    out: dict[str, Any] = {}
    with stage_record(store, round_id, "preference") as box:
        if box is None:
            return out
        pc = config.preference
        pairs = build_round_pairs(store, config, run_id, round_index)
        out["pairs"] = factor_counts(pairs)
        out["from_rollouts"] = sum(p.source == "rollout" for p in pairs)
        trained = [p for p in pairs if p.factor in pc.factors]
        reason = None
        if not pc.enabled:
            reason = "pairs stored; preference training is off"
        elif config.solver.backend != "local":
            reason = "pairs stored; the preference stage trains with the local trainer only"
        elif not trained:
            reason = "no pair to train on"
        if reason is not None:
            box.append(out | {"status": "skipped", "reason": reason})
            return out
        ckpt, path = latest_solver(store, run_id, round_index + 1)
        questions = accepted_solver_questions(
            store, run_id, round_id, config.questioner.solver_sampling.sampling, config.workdir_path / "cache"
        )
        requests = {q.question_id: q.request for q in questions}
        examples = [
            PairExample(requests[p.question_id], p.chosen, p.rejected, p.factor)
            for p in trained
            if p.question_id in requests
        ]
        lm = load_model(path, device="auto")
        trainer = DPOTrainer(lm, pc.model_copy(update={"seed": config.seed * 1019 + round_index}))
        steps = trainer.train(examples, progress=progress)
        saved = save_checkpoint(trainer.lm, config.run_dir / f"round-{round_index}" / "preference")
        new = checkpoint_row(store, saved, "preference", run_id=run_id, round_id=round_id, base_model=path)
        out |= {
            "checkpoint": new,
            "from": ckpt,
            "trained_pairs": len(examples),
            "steps": len(steps),
            "loss_first": round(steps[0].loss, 4) if steps else None,
            "loss_last": round(steps[-1].loss, 4) if steps else None,
            "margin_last": round(steps[-1].margin, 4) if steps else None,
        }
        box.append(dict(out))
    return out
