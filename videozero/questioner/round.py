"""The questioner phase of a round over the store: propose candidates, verify them, record the verdicts.

`question_round` is the Python API behind `videozero question` and the round flow:

1. `ensure_heldout`: once per run, template questions on the held-out videos (split 'heldout',
   accepted by construction), the fixed set every checkpoint is reported on, and likewise on the
   validation videos (split 'validation'), the set recipes and checkpoints are chosen on;
2. `propose_round` (stage 'propose'): template questions of every family on every training video, in
   the curriculum's mix and levels, plus model-written ones when a questioner engine is given;
   unparseable writes, degenerate evidence and near-duplicates (MiniLM text + evidence overlap) are
   stored as rejected with their reason; the rest as candidates. All rows land in one transaction
   with the stage's 'done', so a killed proposal leaves nothing behind and is redone;
3. `verify_round` (stage 'verify'): every candidate is rolled out by the frozen solver in every mode
   (`verify.verify`); each chunk's attempts and verdicts are committed together, so a killed
   verification resumes with the candidates that are left.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from store.bulk import insert_attempts, insert_questions
from store.runs import ensure_round, run_video_ids, set_stage, stage_status
from store.tables import Question
from videozero.errors import VideozeroError
from videozero.evidence.views import VideoEvidence, load_video_evidence
from videozero.models.engines.base import GenerationEngine
from videozero.models.prompt import VideoInput
from videozero.questioner.candidate import Candidate
from videozero.questioner.families import propose
from videozero.questioner.round_config import QuestionerConfig
from videozero.questioner.verify import (
    DEGENERATE,
    DUPLICATE,
    VerifyItem,
    degenerate_reason,
    verify,
)
from videozero.rewards import Span
from videozero.solver.rollout import attempt_rows
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


def _row(c: Candidate, run_id: int, round_id: int | None, video_id: int, split: str) -> dict[str, Any]:
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


def _rotate(counts: dict[str, int], levels: Sequence[int]) -> list[tuple[str, int]]:
    return [(f, levels[i % len(levels)]) for f, n in counts.items() for i in range(n)]


FIXED_SPLITS = ("heldout", "validation")


def _fixed_count(session, run_id: int, split: str) -> int:
    return len(
        session.scalars(select(Question.id).where(Question.run_id == run_id, Question.split == split)).all()
    )


def ensure_fixed_questions(
    store, run_id: int, config: QuestionerConfig, split: str, cache_dir: str | Path | None = None
) -> int:
    """Create the run's fixed questions of `split` once (template, accepted by construction) on the
    run's videos of that split: `heldout` (what every checkpoint is reported on) or `validation` (what
    recipes and checkpoints are chosen on); returns how many the run has. Both take
    `heldout_per_video` questions per video over `heldout_levels`; videos that cannot support a family
    give fewer questions of it."""
    if split not in FIXED_SPLITS:
        raise ValueError(f"fixed questions are made for {' or '.join(FIXED_SPLITS)}, not {split!r}")
    with store.session() as s:
        have = _fixed_count(s, run_id, split)
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
        for family, level in _rotate(counts, config.heldout_levels):
            per_level[level][family] = per_level[level].get(family, 0) + 1
        for level, fam_counts in sorted(per_level.items()):
            for c in propose(
                ev, fam_counts, dict.fromkeys(fam_counts, level), seed=config.seed * 7919 + 1 + level + salt
            ):
                if degenerate_reason(c.evidence, ev.duration, config.verify) is None:
                    rows.append(_row(c, run_id, None, video_id, split) | {"status": "accepted"})
    with store.write() as s:
        if not _fixed_count(s, run_id, split):
            insert_questions(s, rows)
    return len(rows)


def ensure_heldout(store, run_id: int, config: QuestionerConfig, cache_dir: str | Path | None = None) -> int:
    """The run's held-out and validation questions, created once; returns how many held-out ones."""
    ensure_fixed_questions(store, run_id, config, "validation", cache_dir)
    return ensure_fixed_questions(store, run_id, config, "heldout", cache_dir)


def _stored_for_dedup(session, run_id: int) -> list[tuple[int, int, str, tuple[Span, ...]]]:
    from videozero.questioner.dedup import dedup_text

    rows = session.execute(
        select(
            Question.id,
            Question.video_id,
            Question.family,
            Question.text,
            Question.options,
            Question.evidence,
        ).where(Question.run_id == run_id, Question.split == "train", Question.reject_reason.is_(None))
    )
    out = []
    for qid, vid, family, text, options, evidence in rows:
        c = Candidate(
            family, text, "", tuple(tuple(s) for s in evidence or []), tuple(options) if options else None
        )
        out.append((int(qid), int(vid), dedup_text(c), c.evidence))
    return out


def propose_round(
    store,
    run_id: int,
    round_id: int,
    config: QuestionerConfig,
    levels: Mapping[str, int] | None = None,
    weights: Mapping[str, float] | None = None,
    writer: Callable[[VideoEvidence, int], list[Candidate]] | None = None,
    cache_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    evidence_transform: Callable[[VideoEvidence], VideoEvidence] | None = None,
) -> int:
    """Propose the round's candidates on every training video and store them; returns how many were
    stored (0 when the stage is already done). `writer(evidence, round_index)` adds model-written ones."""
    from videozero.questioner.dedup import QuestionEmbedder, deduplicate

    with store.session() as s:
        if stage_status(s, round_id, "propose") == "done":
            return 0
        videos = run_video_ids(s, run_id, "train")
        stored = _stored_for_dedup(s, run_id)
    if not videos:
        raise VideozeroError(
            f"run {run_id} has no training videos: add videos with `--videos` and mine them."
        )
    started = time.perf_counter()
    counts = family_counts(config.per_video, weights, config.families)
    candidates: list[tuple[Candidate, int]] = []
    for i, video_id in enumerate(videos):
        ev = load_video_evidence(store, video_id, cache_dir)
        if evidence_transform is not None:
            ev = evidence_transform(ev)
        made = propose(ev, counts, levels, seed=config.seed * 100_003 + round_id) if config.templates else []
        if writer is not None:
            made += writer(ev, round_id)
        for c in made:
            if c.reject_reason is None:
                why = degenerate_reason(c.evidence, ev.duration, config.verify)
                if why is not None:
                    c.reject_reason = DEGENERATE
                    c.spec["degenerate"] = why
            candidates.append((c, video_id))
        if progress is not None:
            progress(i + 1, len(videos))
    live = [(c, v) for c, v in candidates if c.reject_reason is None]
    dups, penalties = deduplicate(
        [c for c, _ in live],
        [v for _, v in live],
        QuestionEmbedder(),
        stored,
        text_threshold=config.dedup_threshold,
        penalty_threshold=config.repetition_threshold,
    )
    for (c, _), dup, pen in zip(live, dups, penalties, strict=True):
        # the repetition penalty shapes the model writer's reward; template texts repeat by design
        c.spec["repetition"] = round(float(pen), 6) if c.writer == "model" else 0.0
        if dup.stored_id is not None or dup.batch_index is not None:
            c.reject_reason = DUPLICATE
            c.spec["duplicate_of"] = {"stored": dup.stored_id, "batch": dup.batch_index}
    rows = [_row(c, run_id, round_id, v, "train") for c, v in candidates]
    with store.write() as s:
        if stage_status(s, round_id, "propose") == "done":
            return 0
        ids = insert_questions(s, rows)
        by_live = {id(c): qid for (c, _), qid in zip(candidates, ids, strict=True)}
        live_ids = [by_live[id(c)] for c, _ in live]
        for (c, _), qid in zip(live, live_ids, strict=True):
            ref = c.spec.get("duplicate_of")
            if ref:
                target = ref["stored"] if ref["stored"] is not None else live_ids[ref["batch"]]
                s.get(Question, qid).dedup_of = target
        set_stage(
            s, round_id, "propose", "done", seconds=round(time.perf_counter() - started, 2), stored=len(rows)
        )
    return len(rows)


class VideoViews:
    """Each video's mined evidence and its frames at the solver's sampling, loaded once per call."""

    def __init__(self, store, sampling, cache_dir: str | Path | None) -> None:
        self.store, self.sampling, self.cache_dir = store, sampling, cache_dir
        self.cache = VideoCache(cache_dir) if cache_dir is not None else None
        self._views: dict[int, tuple[VideoEvidence, VideoInput, VideoInput]] = {}

    def __call__(self, video_id: int) -> tuple[VideoEvidence, VideoInput, VideoInput]:
        """(evidence, the video as the solver sees it, the dense mined frames query images come from)."""
        if video_id not in self._views:
            ev = load_video_evidence(self.store, video_id, self.cache_dir)
            shown = VideoInput.from_clip(load_clip(ev.path, self.sampling, self.cache))
            self._views[video_id] = (ev, shown, VideoInput(ev.frames, ev.timestamps))
        return self._views[video_id]


def _pending(session, round_id: int) -> list[Question]:
    return list(
        session.scalars(
            select(Question)
            .where(Question.round_id == round_id, Question.status == "candidate")
            .order_by(Question.id)
        )
    )


def _candidate_of(q: Question) -> Candidate:
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


def verify_round(
    store,
    engine: GenerationEngine,
    run_id: int,
    round_id: int,
    checkpoint_id: int,
    config: QuestionerConfig,
    cache_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Verify the round's remaining candidates with the solver behind `engine`; returns how many."""
    with store.session() as s:
        if stage_status(s, round_id, "verify") == "done":
            return 0
        pending = [(q.id, q.video_id, _candidate_of(q)) for q in _pending(s, round_id)]
    started = time.perf_counter()
    views = VideoViews(store, config.solver_sampling.sampling, cache_dir)
    done = 0
    for start in range(0, len(pending), config.chunk):
        chunk = pending[start : start + config.chunk]
        items = []
        for qid, vid, cand in chunk:
            ev, shown, dense = views(vid)
            items.append(VerifyItem(cand, shown, dense, ev.duration, ev.segments, seed=qid))
        verdicts = verify(engine, items, config.verify)
        with store.write() as s:
            attempts = []
            for (qid, _, cand), v in zip(chunk, verdicts, strict=True):
                q = s.get(Question, qid)
                repetition = float(cand.spec.get("repetition", 0.0))
                q.status, q.reject_reason = v.status, v.reason
                q.r_learn, q.r_dep, q.r_evid = v.r_learn, v.r_dep, v.r_evid
                q.r_q = v.r_q(repetition, config.verify.use_r_dep)
                q.agreement = v.agreement
                q.consensus_answer = v.consensus_answer
                q.consensus_evidence = [list(sp) for sp in v.consensus_spans] or None
                q.verification = v.figures() | {"repetition": repetition, "checkpoint_id": checkpoint_id}
                for mode, r in v.rollouts.items():
                    attempts += attempt_rows(r, qid, checkpoint_id, mode)
            insert_attempts(s, attempts)
        done += len(chunk)
        if progress is not None:
            progress(done, len(pending))
    with store.write() as s:
        left = s.scalar(
            select(Question.id).where(Question.round_id == round_id, Question.status == "candidate").limit(1)
        )
        if left is None:
            set_stage(
                s, round_id, "verify", "done", seconds=round(time.perf_counter() - started, 2), verified=done
            )
    return done


def round_summary(store, round_id: int) -> RoundQuestions:
    """Counts of the round's questions by family and status, and rejection reasons."""
    out = RoundQuestions(round_id)
    with store.session() as s:
        rows = s.execute(
            select(Question.family, Question.status, Question.reject_reason).where(
                Question.round_id == round_id
            )
        )
        for family, status, reason in rows:
            out.counts[family][status] += 1
            if reason:
                out.reasons[reason] += 1
    return out


def question_round(
    store,
    run_id: int,
    round_index: int,
    engine: GenerationEngine,
    checkpoint_id: int,
    config: QuestionerConfig | None = None,
    levels: Mapping[str, int] | None = None,
    weights: Mapping[str, float] | None = None,
    writer: Callable[[VideoEvidence, int], list[Candidate]] | None = None,
    cache_dir: str | Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    evidence_transform: Callable[[VideoEvidence], VideoEvidence] | None = None,
) -> RoundQuestions:
    """The questioner phase of round `round_index`: held-out set (once), proposals, verification."""
    config = config or QuestionerConfig()
    round_id = ensure_round(store, run_id, round_index)
    seconds = {}
    t = time.perf_counter()
    ensure_heldout(store, run_id, config, cache_dir)
    seconds["heldout"] = time.perf_counter() - t
    t = time.perf_counter()
    step = (lambda name: lambda i, n: progress(name, i, n)) if progress else (lambda name: None)
    propose_round(
        store,
        run_id,
        round_id,
        config,
        levels,
        weights,
        writer,
        cache_dir,
        step("propose"),
        evidence_transform,
    )
    seconds["propose"] = time.perf_counter() - t
    t = time.perf_counter()
    verify_round(store, engine, run_id, round_id, checkpoint_id, config, cache_dir, step("verify"))
    seconds["verify"] = time.perf_counter() - t
    summary = round_summary(store, round_id)
    summary.seconds = seconds
    return summary


def family_measurements(store, round_id: int) -> dict[str, Any]:
    """Per family, what the round's verification measured for the curriculum: the solver's accuracy
    with the video, its agreement, the learnability min(p, 1 - p), over the verified questions."""
    from videozero.curriculum import FamilyMeasurement

    per: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    with store.session() as s:
        rows = s.execute(
            select(Question.family, Question.verification, Question.agreement, Question.r_learn).where(
                Question.round_id == round_id, Question.verification.is_not(None)
            )
        )
        for family, figures, agreement, r_learn in rows:
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


def accepted_solver_questions(
    store, run_id: int, round_id: int, sampling, cache_dir: str | Path | None = None
) -> list:
    """The round's accepted training questions as the solver trainer takes them: each request holds the
    video at the solver's sampling and the query images cut from the mined frames."""
    with store.session() as s:
        rows = s.scalars(
            select(Question)
            .where(Question.run_id == run_id, Question.round_id == round_id, Question.status == "accepted")
            .where(Question.split == "train")
            .order_by(Question.id)
        ).all()
        items = [(q.id, q.video_id, _candidate_of(q)) for q in rows]
    views = VideoViews(store, sampling, cache_dir)
    return [solver_question(c, *views(vid), question_id=qid) for qid, vid, c in items]


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
    )
