"""The held-out stage: the run's fixed held-out and validation questions, created once on the videos of
those splits (template questions, accepted by construction)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from store import Store
from store.bulk import insert_questions
from store.questions import fixed_question_count
from store.runs import run_video_ids
from videozero.faults import crash_point
from videozero.questioner.families import propose
from videozero.questioner.round import family_counts, question_row, rotate_levels
from videozero.questioner.round_config import QuestionerConfig
from videozero.questioner.verify import degenerate_reason
from videozero.run_config import RunConfig
from videozero.stages.evidence import load_video_evidence
from videozero.stages.run import open_run_store


def heldout_stage(config: RunConfig, run_id: int) -> int:
    """The run's fixed held-out questions (created once, from the held-out videos); returns how many."""
    store = open_run_store(config)
    crash_point("heldout:start")
    made = ensure_heldout(store, run_id, config.questioner, config.workdir_path / "cache")
    crash_point("heldout:end")
    return made


FIXED_SPLITS = ("heldout", "validation")


def ensure_fixed_questions(
    store: Store, run_id: int, config: QuestionerConfig, split: str, cache_dir: str | Path | None = None
) -> int:
    """Create the run's fixed questions of `split` once (template, accepted by construction) on the
    run's videos of that split: `heldout` (what every checkpoint is reported on) or `validation` (what
    recipes and checkpoints are chosen on); returns how many the run has. Both take
    `heldout_per_video` questions per video over `heldout_levels`; videos that cannot support a family
    give fewer questions of it."""
    if split not in FIXED_SPLITS:
        raise ValueError(f"fixed questions are made for {' or '.join(FIXED_SPLITS)}, not {split!r}")
    with store.session() as s:
        have = fixed_question_count(s, run_id, split)
        videos = run_video_ids(s, run_id, split)
    if have or not videos or not config.heldout_per_video:
        return have
    # the two sets draw from different seeds, so a video in both (never, by the split) would differ too
    salt = FIXED_SPLITS.index(split) * 104_729
    rows = []
    for video_id in videos:
        ev = load_video_evidence(store, video_id, cache_dir)
        counts = family_counts(config.heldout_per_video, None, config.families)
        per_level: dict[int, dict[str, int]] = defaultdict(dict)
        for family, level in rotate_levels(counts, config.heldout_levels):
            per_level[level][family] = per_level[level].get(family, 0) + 1
        for level, fam_counts in sorted(per_level.items()):
            for c in propose(
                ev, fam_counts, dict.fromkeys(fam_counts, level), seed=config.seed * 7919 + 1 + level + salt
            ):
                if degenerate_reason(c.evidence, ev.duration, config.verify) is None:
                    rows.append(question_row(c, run_id, None, video_id, split) | {"status": "accepted"})
    with store.write() as s:
        if not fixed_question_count(s, run_id, split):
            insert_questions(s, rows)
    return len(rows)


def ensure_heldout(
    store: Store, run_id: int, config: QuestionerConfig, cache_dir: str | Path | None = None
) -> int:
    """The run's held-out and validation questions, created once; returns how many held-out ones."""
    ensure_fixed_questions(store, run_id, config, "validation", cache_dir)
    return ensure_fixed_questions(store, run_id, config, "heldout", cache_dir)
