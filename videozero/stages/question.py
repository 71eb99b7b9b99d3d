"""The question stage: propose on the training videos at the curriculum's levels and mix, verify with
the current solver, store every candidate with its verdict.

`question_round` is the Python API behind `videozero question` and the round flow:

1. `stages.heldout.ensure_heldout`: once per run, the fixed held-out and validation questions;
2. `propose_round` (stage 'propose'): template questions of every family on every training video, in
   the curriculum's mix and levels, plus model-written ones when a questioner engine is given;
   unparseable writes, degenerate evidence and near-duplicates (MiniLM text + evidence overlap) are
   stored as rejected with their reason; the rest as candidates. All rows land in one transaction
   with the stage's 'done', so a killed proposal leaves nothing behind and is redone;
3. `verify_round` (stage 'verify'): every candidate is rolled out by the frozen solver in every mode
   (`questioner.verify.verify`); each chunk's attempts and verdicts are committed together, so a killed
   verification resumes with the candidates that are left.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store import Session, Store
from store.bulk import insert_attempts, insert_questions
from store.checkpoints import current_questioner, current_solver
from store.questions import (
    candidates_left,
    link_duplicates,
    live_training_questions,
    pending_questions,
    record_verdict,
    status_counts,
    still_pending,
)
from store.runs import ensure_round, round_curriculum, run_video_ids, set_stage, stage_status
from videozero.curriculum import CurriculumScheduler, CurriculumState
from videozero.errors import VideozeroError
from videozero.evidence.views import VideoEvidence, whole_video
from videozero.faults import crash_point, pause_point
from videozero.memory import releasing_memory
from videozero.models.engines.base import GenerationEngine
from videozero.models.engines.transformers_engine import load_engine
from videozero.progress import ProgressReport
from videozero.questioner.candidate import Candidate
from videozero.questioner.dedup import QuestionEmbedder, dedup_text, deduplicate
from videozero.questioner.families import propose
from videozero.questioner.model_writer import model_writer
from videozero.questioner.round import RoundQuestions, VideoViews, candidate_of, family_counts, question_row
from videozero.questioner.round_config import QuestionerConfig
from videozero.questioner.verify import DEGENERATE, DUPLICATE, VerifyItem, degenerate_reason, verify
from videozero.questioner.writer import WriterConfig
from videozero.rewards import Span
from videozero.run_config import RunConfig, verify_settings
from videozero.solver.rollout import attempt_rows
from videozero.stages.evidence import evidence_loader, load_video_evidence
from videozero.stages.fanout import (
    Executor,
    executor_of,
    fan_out,
    local_engine,
    record,
    store_url,
    worker_engine,
    worker_kept,
    worker_store,
)
from videozero.stages.heldout import ensure_heldout
from videozero.stages.run import open_run_store, round_id_of, stage_record
from videozero.video.cache import VideoCache


def curriculum_state(store: Store, run_id: int, round_index: int, config: RunConfig) -> CurriculumState:
    """The curriculum the round runs at: the state stored by the previous round, else the start."""
    if round_index > 0:
        prev = round_curriculum(store, run_id, round_index - 1)
        if prev and prev.get("families"):
            return CurriculumState.model_validate(prev)
    return CurriculumScheduler(config.curriculum).initial(list(config.questioner.families))


@releasing_memory
def question_stage(
    config: RunConfig, run_id: int, round_index: int, progress: ProgressReport | None = None
) -> dict[str, Any]:
    """The questioner phase: propose on the training videos at the curriculum's levels and mix, verify
    with the current solver, store everything."""
    store = open_run_store(config)
    round_id = round_id_of(store, run_id, round_index)
    out: dict[str, Any] = {}
    with stage_record(store, round_id, "question") as box:
        if box is None:
            return out
        state = curriculum_state(store, run_id, round_index, config)
        ckpt, path = current_solver(store, run_id, round_index)
        fan = executor_of(config)
        # on Ray the workers load the solver; this process only if the model writes questions
        engine = None if fan.is_ray and config.writer == "template" else load_engine(path)
        qcfg = config.questioner.model_copy(
            update={
                "templates": config.writer != "model",
                "verify": verify_settings(config),
                "seed": config.seed,
            }
        )
        cache_dir = config.workdir_path / "cache"
        writer = None
        if config.writer in ("model", "both"):
            q_path = current_questioner(store, run_id, round_index) or path
            q_engine = engine if q_path == path and engine is not None else load_engine(q_path)
            writer = model_writer(
                q_engine,
                WriterConfig(max_new_tokens=config.questioner_training.max_new_tokens),
                qcfg.model_spans_per_video,
                qcfg.solver_sampling.sampling,
                VideoCache(cache_dir),
            )
        summary = question_round(
            store,
            run_id,
            round_index,
            engine,
            ckpt,
            qcfg,
            state.levels(),
            state.weights(),
            writer,
            cache_dir,
            progress,
            evidence_transform=None if config.ablation.evidence_anchoring else whole_video,
            executor=fan,
            checkpoint_path=path,
        )
        out = {
            "proposed": sum(sum(c.values()) for c in summary.counts.values()),
            "accepted": sum(c["accepted"] for c in summary.counts.values()),
            "verified_by": ckpt,
        }
        box.append(dict(out))
    return out


# --- the questioner phase over the store -------------------------------------------------------------


def _stored_for_dedup(session: Session, run_id: int) -> list[tuple[int, int, str, tuple[Span, ...]]]:
    out = []
    for qid, vid, family, text, options, evidence in live_training_questions(session, run_id):
        c = Candidate(
            family, text, "", tuple(tuple(s) for s in evidence or []), tuple(options) if options else None
        )
        out.append((int(qid), int(vid), dedup_text(c), c.evidence))
    return out


def propose_round(
    store: Store,
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
    rows = [question_row(c, run_id, round_id, v, "train") for c, v in candidates]
    with store.write() as s:
        if stage_status(s, round_id, "propose") == "done":
            return 0
        ids = insert_questions(s, rows)
        by_live = {id(c): qid for (c, _), qid in zip(candidates, ids, strict=True)}
        live_ids = [by_live[id(c)] for c, _ in live]
        links = {}
        for (c, _), qid in zip(live, live_ids, strict=True):
            ref = c.spec.get("duplicate_of")
            if ref:
                links[qid] = ref["stored"] if ref["stored"] is not None else live_ids[ref["batch"]]
        link_duplicates(s, links)
        set_stage(
            s, round_id, "propose", "done", seconds=round(time.perf_counter() - started, 2), stored=len(rows)
        )
    return len(rows)


def verify_round(
    store: Store,
    engine: GenerationEngine,
    run_id: int,
    round_id: int,
    checkpoint_id: int,
    config: QuestionerConfig,
    cache_dir: str | Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    executor: Executor | None = None,
    checkpoint_path: str | None = None,
) -> int:
    """Verify the round's remaining candidates with the solver behind `engine` (at `checkpoint_path`, which
    Ray workers load), one task per chunk of `config.chunk` candidates; returns how many were verified."""
    with store.session() as s:
        if stage_status(s, round_id, "verify") == "done":
            return 0
        pending = [q.id for q in pending_questions(s, round_id)]
    started = time.perf_counter()
    executor = executor or Executor()
    path = checkpoint_path or f"engine:{id(engine)}"
    local_engine(path, engine)
    chunks = [pending[i : i + config.chunk] for i in range(0, len(pending), config.chunk)]
    cache = str(cache_dir) if cache_dir is not None else None
    tasks = [
        VerifyTask(store_url(store), chunk, checkpoint_id, path, config, cache, executor.engine)
        for chunk in chunks
    ]
    step = (lambda i, n: progress(sum(map(len, chunks[:i])), len(pending))) if progress else None
    results = fan_out(executor, verify_task, tasks, step, store)
    record(store, run_id, "verify", executor, [f"questions {c[0]}-{c[-1]}" for c in chunks], results)
    with store.write() as s:
        if not candidates_left(s, round_id):
            set_stage(
                s,
                round_id,
                "verify",
                "done",
                seconds=round(time.perf_counter() - started, 2),
                verified=sum(r.value for r in results),
            )
    return len(pending)


@dataclass(frozen=True)
class VerifyTask:
    """A chunk of candidates to verify: the store, their ids, the verifying checkpoint, the settings."""

    db_url: str
    question_ids: list[int]
    checkpoint_id: int
    checkpoint_path: str
    config: QuestionerConfig
    cache_dir: str | None
    engine: str = "transformers"


def verify_task(task: VerifyTask) -> int:
    """Verify one chunk with this worker's engine and record verdicts and attempts in one transaction,
    for the candidates still unverified then (a retried task writes nothing twice); returns how many."""
    store = worker_store(task.db_url)
    config = task.config
    with store.session() as s:
        chunk = [(q.id, q.video_id, candidate_of(q)) for q in still_pending(s, task.question_ids)]
    if not chunk:
        return 0
    pause_point("verify:task")
    engine = worker_engine(task.checkpoint_path, task.engine)
    sampling = config.solver_sampling.sampling
    views = worker_kept(  # the last few videos stay loaded for this worker's next chunks
        "verify-views",
        (task.db_url, task.cache_dir, sampling.key),
        lambda: VideoViews(evidence_loader(store, task.cache_dir), sampling, task.cache_dir, keep=4),
    )
    items = []
    for qid, vid, cand in chunk:
        ev, shown, dense = views(vid)
        items.append(VerifyItem(cand, shown, dense, ev.duration, ev.segments, seed=qid))
    verdicts = verify(engine, items, config.verify)
    written = 0
    with store.write() as s:
        open_ids = {q.id for q in still_pending(s, [qid for qid, _, _ in chunk], lock=True)}
        attempts = []
        for (qid, _, cand), v in zip(chunk, verdicts, strict=True):
            if qid not in open_ids:  # verified meanwhile by an earlier try of this task
                continue
            repetition = float(cand.spec.get("repetition", 0.0))
            record_verdict(
                s,
                qid,
                {
                    "status": v.status,
                    "reject_reason": v.reason,
                    "r_learn": v.r_learn,
                    "r_dep": v.r_dep,
                    "r_evid": v.r_evid,
                    "r_q": v.r_q(repetition, config.verify.use_r_dep),
                    "agreement": v.agreement,
                    "consensus_answer": v.consensus_answer,
                    "consensus_evidence": [list(sp) for sp in v.consensus_spans] or None,
                    "verification": v.figures()
                    | {"repetition": repetition, "checkpoint_id": task.checkpoint_id},
                },
            )
            for mode, r in v.rollouts.items():
                attempts += attempt_rows(r, qid, task.checkpoint_id, mode)
            written += 1
        insert_attempts(s, attempts)
    crash_point("verify:chunk")  # this chunk's verdicts committed, the rest pending
    return written


def round_question_counts(store: Store, round_id: int) -> RoundQuestions:
    """Counts of the round's questions by family and status, and rejection reasons."""
    out = RoundQuestions(round_id)
    with store.session() as s:
        for family, status, reason in status_counts(s, round_id):
            out.counts[family][status] += 1
            if reason:
                out.reasons[reason] += 1
    return out


def question_round(
    store: Store,
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
    executor: Executor | None = None,
    checkpoint_path: str | None = None,
) -> RoundQuestions:
    """The questioner phase of round `round_index`: held-out set (once), proposals, verification (its
    chunks on `executor`, whose workers load the solver at `checkpoint_path`)."""
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
    crash_point("question:proposed")  # proposals stored, none verified
    t = time.perf_counter()
    verify_round(
        store,
        engine,
        run_id,
        round_id,
        checkpoint_id,
        config,
        cache_dir,
        step("verify"),
        executor,
        checkpoint_path,
    )
    seconds["verify"] = time.perf_counter() - t
    summary = round_question_counts(store, round_id)
    summary.seconds = seconds
    return summary
