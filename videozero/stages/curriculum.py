"""The curriculum stage: the next round's levels and mix from this round's verification."""

from __future__ import annotations

from typing import Any

from store.runs import finish_round, stored_curriculum
from videozero.curriculum import CurriculumScheduler
from videozero.questioner.round import family_measurements
from videozero.run_config import RunConfig
from videozero.stages.question import curriculum_state
from videozero.stages.run import open_run_store, round_id_of


def curriculum_stage(config: RunConfig, run_id: int, round_index: int) -> dict[str, Any]:
    """The next round's levels and mix from this round's verification, stored with their reasons (the
    stored state and the round's end land in one transaction)."""
    store = open_run_store(config)
    round_id = round_id_of(store, run_id, round_index)
    done = stored_curriculum(store, round_id)
    if done is not None:
        return done
    state = curriculum_state(store, run_id, round_index, config)
    measured = family_measurements(store, round_id)
    nxt = CurriculumScheduler(config.curriculum).update(state, measured)
    payload = nxt.model_dump() | {"measured": {f: m.model_dump() for f, m in measured.items()}}
    finish_round(store, round_id, payload)
    return payload
