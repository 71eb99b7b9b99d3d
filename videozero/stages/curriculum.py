"""The curriculum stage: the next round's levels and mix from this round's verification."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from store import Store
from store.questions import verified_figures
from store.runs import finish_round, stored_curriculum
from videozero.curriculum import CurriculumScheduler, FamilyMeasurement
from videozero.faults import crash_point
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
    crash_point("curriculum:start")
    finish_round(store, round_id, payload)
    crash_point("curriculum:end")
    return payload


def family_measurements(store: Store, round_id: int) -> dict[str, Any]:
    """Per family, what the round's verification measured for the curriculum: the solver's accuracy
    with the video, its agreement, the learnability min(p, 1 - p), over the verified questions."""
    per: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    with store.session() as s:
        for family, figures, agreement, r_learn in verified_figures(s, round_id):
            full = (figures or {}).get("scores", {}).get("full")
            if full is None or agreement is None or r_learn is None:
                continue
            per[family].append((float(full), float(agreement), float(r_learn)))
    return {
        f: FamilyMeasurement(
            accuracy=min(1.0, sum(a for a, _, _ in v) / len(v)),
            agreement=min(1.0, sum(c for _, c, _ in v) / len(v)),
            learnability=min(0.5, sum(r for _, _, r in v) / len(v)),
            n=len(v),
        )
        for f, v in per.items()
    }
