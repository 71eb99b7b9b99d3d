"""Template questions as free supervised targets: the loop's own families, proposed on the run's
training videos at every level, with answers and evidence known by construction (no human labels).

The solver's warm-up learns from them what the loop will ask and the held-out set measures (a warm-up
on other tasks teaches the answer format but not the families' content). Only training videos are
ever used: recipes are tuned on them, never on the held-out videos.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from store.runs import run_video_ids
from store.tables import Video
from videozero.questioner.families import MAX_LEVEL, propose
from videozero.questioner.round import VideoViews, family_counts, solver_question
from videozero.questioner.round_config import QuestionerConfig
from videozero.questioner.verify import degenerate_reason


def template_targets(
    store,
    video_ids: Sequence[int],
    config: QuestionerConfig,
    per_video: int,
    levels: Sequence[int] = tuple(range(MAX_LEVEL + 1)),
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> list:
    """Up to `per_video` distinct template questions per video (shared evenly over the families and
    `levels`) as solver questions with their constructed answers, at the solver's sampling. Videos that
    cannot support a family give fewer; degenerate evidence is left out, as the loop rejects it."""
    views = VideoViews(store, config.solver_sampling.sampling, cache_dir)
    per_level = max(1, round(per_video / max(1, len(levels))))
    out = []
    for video_id in video_ids:
        ev, shown, dense = views(video_id)
        seen: set[tuple] = set()
        for level in levels:
            counts = family_counts(per_level, None, config.families)
            made = propose(ev, counts, dict.fromkeys(counts, level), seed=seed * 1_000_003 + level)
            for c in made:
                key = (c.family, c.text, c.answer, c.evidence, repr(c.spec.get("query")))
                if key in seen or degenerate_reason(c.evidence, ev.duration, config.verify) is not None:
                    continue
                seen.add(key)
                out.append(solver_question(c, ev, shown, dense))
    return out


def training_videos(store, run_id: int) -> list[int]:
    """The videos the run's warm-up learns from: its training videos and its warm-up scenes (never its
    held-out or validation ones)."""
    with store.session() as s:
        return run_video_ids(s, run_id, "train") + run_video_ids(s, run_id, "warmup")


def videos_tag(store, video_ids: Sequence[int]) -> str:
    """A short digest of the videos' contents: what a warm-up trained on them is cached under."""
    from sqlalchemy import select

    with store.session() as s:
        hashes = sorted(
            h or str(v)
            for v, h in s.execute(select(Video.id, Video.content_hash).where(Video.id.in_(video_ids)))
        )
    return hashlib.sha1("\n".join(hashes).encode()).hexdigest()[:8]
