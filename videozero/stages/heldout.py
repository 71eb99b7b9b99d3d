"""The held-out stage: the run's fixed held-out and validation questions, created once."""

from __future__ import annotations

from videozero.questioner.round import ensure_heldout
from videozero.run_config import RunConfig
from videozero.stages.run import open_run_store


def heldout_stage(config: RunConfig, run_id: int) -> int:
    """The run's fixed held-out questions (created once, from the held-out videos); returns how many."""
    store = open_run_store(config)
    return ensure_heldout(store, run_id, config.questioner, config.workdir_path / "cache")
