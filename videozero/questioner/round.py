"""The questioner's pieces of a round, as plain functions: how many questions of each family a video gets
(`family_counts`, `rotate_levels`), a candidate as a `questions` row and back (`question_row`,
`candidate_of`), each video's evidence and frames as the solver sees them (`VideoViews`), and a
candidate as the solver trainer takes it (`solver_question`). The question and held-out stages
(`stages.question`, `stages.heldout`) run them over the store."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videozero.evidence.views import EvidenceLoader, VideoEvidence
from videozero.models.prompt import VideoInput
from videozero.questioner.candidate import Candidate
from videozero.video.cache import VideoCache, load_clip


def family_counts(total: int, weights: Mapping[str, float] | None, families: Sequence[str]) -> dict[str, int]:
    """`total` questions shared among `families` in proportion to `weights` (largest remainder; equal
    shares without weights); every family with a positive weight gets at least one.

    >>> family_counts(6, None, ["a", "b", "c"])
    {'a': 2, 'b': 2, 'c': 2}
    >>> family_counts(10, {"a": 0.7, "b": 0.2, "c": 0.1}, ["a", "b", "c"])
    {'a': 7, 'b': 2, 'c': 1}
    """
    w = {f: max(0.0, float((weights or {}).get(f, 1.0 if not weights else 0.0))) for f in families}
    if not sum(w.values()):
        w = dict.fromkeys(families, 1.0)
    norm = sum(w.values())
    raw = {f: total * v / norm for f, v in w.items()}
    counts = {f: math.floor(x) for f, x in raw.items()}
    for f in sorted(raw, key=lambda f: -(raw[f] - counts[f]))[: total - sum(counts.values())]:
        counts[f] += 1
    for f in families:
        if w[f] > 0 and counts[f] == 0:
            counts[f] = 1
    return counts


@dataclass
class RoundQuestions:
    """What a questioner phase stored: counts by family and status, reasons, seconds per step."""

    round_id: int
    counts: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    reasons: Counter = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def question_row(
    c: Candidate, run_id: int, round_id: int | None, video_id: int, split: str
) -> dict[str, Any]:
    """A candidate as a row of the `questions` table (a dict of its columns)."""
    spec = dict(c.spec)
    if c.segment_ids:
        spec["segment_ids"] = list(c.segment_ids)
    return {
        "run_id": run_id,
        "round_id": round_id,
        "video_id": video_id,
        "split": split,
        "family": c.family,
        "level": c.level,
        "writer": c.writer,
        "text": c.text,
        "options": list(c.options) if c.options is not None else None,
        "answer": c.answer,
        "evidence": [list(s) for s in c.evidence],
        "spec": spec,
        "status": "rejected" if c.reject_reason else "candidate",
        "reject_reason": c.reject_reason,
    }


def rotate_levels(counts: dict[str, int], levels: Sequence[int]) -> list[tuple[str, int]]:
    """Each of a family's questions in turn at the next of `levels`."""
    return [(f, levels[i % len(levels)]) for f, n in counts.items() for i in range(n)]


class VideoViews:
    """Each video's mined evidence and its frames at the solver's sampling, loaded once per call (with
    `keep`, only the `keep` videos used last are held)."""

    def __init__(
        self, evidence: EvidenceLoader, sampling, cache_dir: str | Path | None, keep: int | None = None
    ) -> None:
        self.evidence, self.sampling, self.keep = evidence, sampling, keep
        self.cache = VideoCache(cache_dir) if cache_dir is not None else None
        self._views: dict[int, tuple[VideoEvidence, VideoInput, VideoInput]] = {}

    def __call__(self, video_id: int) -> tuple[VideoEvidence, VideoInput, VideoInput]:
        """(evidence, the video as the solver sees it, the dense mined frames query images come from)."""
        if video_id not in self._views:
            ev = self.evidence(video_id)
            shown = VideoInput.from_clip(load_clip(ev.path, self.sampling, self.cache))
            if self.keep is not None and len(self._views) >= self.keep:
                self._views.pop(next(iter(self._views)))
            self._views[video_id] = (ev, shown, VideoInput(ev.frames, ev.timestamps))
        else:  # most recently used last
            self._views[video_id] = self._views.pop(video_id)
        return self._views[video_id]


def candidate_of(q: Any) -> Candidate:
    """A stored question row (anything with the `questions` columns as attributes) as a candidate."""
    return Candidate(
        family=q.family,
        text=q.text,
        answer=q.answer,
        evidence=tuple((float(s), float(e)) for s, e in (q.evidence or [])),
        options=tuple(q.options) if q.options is not None else None,
        level=q.level,
        spec=dict(q.spec or {}),
        segment_ids=tuple(q.spec.get("segment_ids", [])) if q.spec else (),
        writer=q.writer,
    )


def solver_question(
    c: Candidate, ev: VideoEvidence, shown: VideoInput, dense: VideoInput, question_id: int | None = None
):
    """A candidate as the solver trainer takes it: its request shows the video at the solver's sampling
    and the query images cut from the dense mined frames; the answer is the constructed one for template
    questions (model-written ones are scored against their consensus)."""
    from videozero.questioner.candidate import question_request
    from videozero.questioner.rationale import rationale
    from videozero.solver.rollout import SolverQuestion

    template = c.writer == "template"
    return SolverQuestion(
        request=question_request(c.prompt, c.spec, dense, shown),
        kind=c.kind,
        answer=c.answer if template else None,
        evidence=c.evidence,
        duration=ev.duration,
        writer=c.writer,
        family=c.family,
        question_id=question_id,
        rationale=rationale(c.family, c.spec, c.evidence, shown.timestamps) if template else "",
        zoom_source=dense,
    )
