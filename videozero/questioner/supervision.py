"""Template questions as free supervised targets: the loop's own families, proposed on the run's
training videos at every level, with answers and evidence known by construction (no human labels).

The solver's warm-up learns from them what the loop will ask and the held-out set measures (a warm-up
on other tasks teaches the answer format but not the families' content). Only training videos are
ever used: recipes are tuned on them, never on the held-out videos.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from videozero.evidence.views import EvidenceLoader
from videozero.questioner.families import MAX_LEVEL, propose
from videozero.questioner.round import VideoViews, family_counts, solver_question
from videozero.questioner.round_config import QuestionerConfig
from videozero.questioner.verify import degenerate_reason


def template_targets(
    evidence: EvidenceLoader,
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
    views = VideoViews(evidence, config.solver_sampling.sampling, cache_dir)
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
