"""Query-frame matching: short supervised drills that teach the learner to compare frames.

Every family asks the solver to relate still images to each other or to the video (the scene of the
Query, what comes after the Moment, the order of clips). A small LM whose projector was aligned on
single-frame captions does not learn that comparison from the family warm-up's long prompts in its
budget; on short prompts it does (nano, 100 full-LM steps: 0.79 on frames of held-apart generated
scenes, chance 0.5). A drill shows a Query frame of a training video and option frames: one shown within
`near_s` of the Query, the others at least `far_s` away and less like the Query by the frozen frame
embedding than the near one (so the constructed answer agrees with what the features can tell).
Answers are known by construction; only training videos are used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from videozero.evidence.views import VideoEvidence
from videozero.models.prompt import Request
from videozero.question_prompt import option_letter
from videozero.solver.warmup_config import MatchingConfig

MATCH_QUESTION = (
    "Which option image shows the same scene as the image labelled Query? "
    "Give only the letter inside <answer></answer>."
)


def matching_drills(
    videos: Sequence[VideoEvidence], count: int, config: MatchingConfig | None = None, seed: int = 0
) -> list[tuple[Request, str]]:
    """Up to `count` (request, target) drills on the videos' dense frames; fewer when the videos hold
    no pair of frames far apart and unlike each other (one static shot)."""
    config = config or MatchingConfig()
    rng = np.random.default_rng(seed)
    usable = [ev for ev in videos if len(ev.timestamps) >= 2]
    out: list[tuple[Request, str]] = []
    for _ in range(count * 4):
        if len(out) == count or not usable:
            break
        ev = usable[int(rng.integers(len(usable)))]
        drill = _drill(ev, config, rng)
        if drill is not None:
            out.append(drill)
    return out


def _drill(ev: VideoEvidence, config: MatchingConfig, rng: np.random.Generator) -> tuple[Request, str] | None:
    t = ev.timestamps
    i = int(rng.integers(len(t)))
    near = np.flatnonzero(np.abs(t - t[i]) <= config.near_s + 1e-6)
    j = int(near[rng.integers(len(near))])
    sims = ev.pooled @ ev.pooled[i]
    far = np.flatnonzero((np.abs(t - t[i]) >= config.far_s) & (sims < sims[j]))
    if len(far) < config.options - 1:
        return None
    picks = [j, *(int(x) for x in rng.choice(far, size=config.options - 1, replace=False))]
    order = rng.permutation(len(picks))
    images = [("Query", ev.frames[i])]
    images += [(f"Option {option_letter(k)}", ev.frames[picks[p]]) for k, p in enumerate(order)]
    answer = option_letter(int(np.flatnonzero(order == 0)[0]))
    return Request(MATCH_QUESTION, images=tuple(images)), f"<answer>{answer}</answer>"
