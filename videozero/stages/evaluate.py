"""The evaluation stage: held-out and validation figures of a checkpoint, and the paper's diagnostics on
a round's accepted questions. The stored questions are read and the answers (attempts) and figures
(metrics) written here; asking and scoring are `evaluation.heldout`'s."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from store import Session, Store
from store.attempts import answered_pairs, attempt_turns, greedy_answers, mode_results, question_rows
from store.bulk import insert_attempts
from store.checkpoints import VALIDATION_SPLIT, checkpoint_of, latest_solver
from store.metrics import write_metrics
from store.tables import ATTEMPT_MODES
from videozero.evaluation.heldout import (
    DIAGNOSTICS_SPLIT,
    HELDOUT_SPLIT,
    HeldoutComparison,
    StoredQuestion,
    answer_questions,
    answered_questions,
    askable,
    heldout_comparison,
    heldout_metrics,
    mode_accuracies,
    paired_diagnostics,
    question_scores,
    stored_question,
    zoom_figures,
)
from videozero.memory import releasing_memory
from videozero.models.engines.base import GenerationEngine
from videozero.models.engines.transformers_engine import load_engine
from videozero.models.eval_config import EvalConfig
from videozero.run_config import RunConfig, evaluation_settings
from videozero.stages.fanout import (
    Executor,
    executor_of,
    fan_out,
    record,
    store_url,
    worker_engine,
    worker_store,
)
from videozero.stages.run import open_run_store, round_id_of, stage_record
from videozero.video.cache import VideoCache


@releasing_memory
def evaluate_checkpoint(config: RunConfig, run_id: int, checkpoint_id: int) -> dict[str, float]:
    """Held-out figures of one checkpoint, and its validation figures unless it is the base (answers
    already stored are not asked again)."""
    store = open_run_store(config)
    row = checkpoint_of(store, checkpoint_id)
    ecfg = evaluation_settings(config)
    fan = {"executor": executor_of(config), "checkpoint_path": row.path}
    engine = None if fan["executor"].is_ray else load_engine(row.path)  # on Ray the workers load it
    figures = evaluate_heldout(engine, store, run_id, checkpoint_id, ecfg, **fan)
    if row.stage != "base":  # the base writes no answer format: nothing to choose it on
        evaluate_heldout(engine, store, run_id, checkpoint_id, ecfg, split=VALIDATION_SPLIT, **fan)
    return figures


@releasing_memory
def eval_stage(config: RunConfig, run_id: int, round_index: int) -> dict[str, Any]:
    """Held-out evaluation of the round's solver and the paper's diagnostics on its accepted questions."""
    store = open_run_store(config)
    round_id = round_id_of(store, run_id, round_index)
    out: dict[str, Any] = {}
    with stage_record(store, round_id, "eval") as box:
        if box is None:
            return out
        ckpt, path = latest_solver(store, run_id, round_index + 1)
        ecfg = evaluation_settings(config)
        fan = {"executor": executor_of(config), "checkpoint_path": path}
        engine = None if fan["executor"].is_ray else load_engine(path)  # on Ray the workers load it
        figures = evaluate_heldout(engine, store, run_id, ckpt, ecfg, **fan)
        valid = evaluate_heldout(engine, store, run_id, ckpt, ecfg, split=VALIDATION_SPLIT, **fan)
        out = {
            "checkpoint": ckpt,
            "accuracy": figures.get("accuracy"),
            "mIoU": figures.get("mIoU"),
            "validation_accuracy": valid.get("accuracy"),
        }
        if ecfg.zoom.mode != "off":  # the held-out answers with zoom, beside the single pass
            out |= {
                f"{ecfg.zoom.mode}_{k}": figures.get(f"{ecfg.zoom.mode}/{k}") for k in ("accuracy", "mIoU")
            }
        if config.eval.diagnostics:
            dcfg = ecfg.model_copy(update={"limit": config.eval.diagnostics_limit})
            engine = engine or load_engine(path)  # the diagnostics run in this process
            diag = probe_round(engine, store, run_id, round_id, ckpt, dcfg)
            out |= {k: diag.get(k) for k in ("video_dependency", "key_necessity", "key_specificity")}
        box.append(dict(out))
    return out


# --- held-out scoring over the store ----------------------------------------------------------------------


def stored_questions(
    session: Session,
    run_id: int,
    split: str | None = None,
    round_id: int | None = None,
    status: str | None = None,
    limit: int | None = None,
) -> list[StoredQuestion]:
    """Questions of a run (oldest first) filtered by split, round and status, with their video paths."""
    return [stored_question(r) for r in question_rows(session, run_id, split, round_id, status, limit)]


def score_questions(
    engine: GenerationEngine,
    store: Store,
    checkpoint_id: int,
    questions: Sequence[StoredQuestion],
    modes: Sequence[str] = ("full",),
    config: EvalConfig | None = None,
    cache: VideoCache | None = None,
    progress: Callable[[int, int], None] | None = None,
    executor: Executor | None = None,
    checkpoint_path: str | None = None,
) -> int:
    """Greedy answers of the checkpoint to each question in each mode, stored as attempts (sample 0).

    Pairs already answered by this checkpoint are skipped; each batch is committed on its own, so an
    interrupted evaluation resumes where it stopped. On a Ray `executor` the pairs go out in chunks of
    four batches, answered by workers that load the checkpoint at `checkpoint_path`. Returns how many
    attempts were added.
    """
    config = config or EvalConfig()
    with store.session() as session:
        done = answered_pairs(session, checkpoint_id, [q.id for q in questions])
    todo = [(q, m) for q in questions for m in modes if (q.id, m) not in done and askable(q, m)]
    if executor is not None and executor.is_ray and todo:
        size = 4 * config.batch_size
        pairs = [(q.id, m) for q, m in todo]
        chunks = [pairs[i : i + size] for i in range(0, len(pairs), size)]
        where = str(cache.root) if cache is not None else None
        path = checkpoint_path or ""
        tasks = [
            EvalTask(store_url(store), checkpoint_id, path, c, config, where, executor.engine) for c in chunks
        ]
        step = (lambda i, n: progress(min(i * size, len(pairs)), len(pairs))) if progress else None
        results = fan_out(executor, eval_task, tasks, step, store)
        run_id = checkpoint_of(store, checkpoint_id).run_id
        record(store, run_id, "eval", executor, [f"answers {c[0][0]}-{c[-1][0]}" for c in chunks], results)
        return len(todo)

    def keep(rows: list[dict[str, Any]]) -> None:
        with store.write() as session:
            insert_attempts(session, [r | {"checkpoint_id": checkpoint_id} for r in rows])

    answer_questions(engine, todo, config, cache, keep, progress)
    return len(todo)


@dataclass(frozen=True)
class EvalTask:
    """A chunk of (question id, mode) pairs for a checkpoint to answer."""

    db_url: str
    checkpoint_id: int
    checkpoint_path: str
    pairs: list[tuple[int, str]]
    config: EvalConfig
    cache_dir: str | None
    engine: str = "transformers"


def eval_task(task: EvalTask) -> int:
    """Answer one chunk with this worker's engine; each batch's attempts are stored with the pairs the
    checkpoint has not answered yet (a retried task writes nothing twice). Returns how many were asked."""
    store = worker_store(task.db_url)
    ids = sorted({qid for qid, _ in task.pairs})
    with store.session() as session:
        done = answered_pairs(session, task.checkpoint_id, ids)
        by_id = {q.id: q for q in map(stored_question, question_rows(session, None, ids=ids))}
    todo = [(by_id[qid], mode) for qid, mode in task.pairs if (qid, mode) not in done and qid in by_id]
    if not todo:
        return 0
    engine = worker_engine(task.checkpoint_path, task.engine)

    def keep(rows: list[dict[str, Any]]) -> None:
        with store.write() as session:
            answered = answered_pairs(session, task.checkpoint_id, [r["question_id"] for r in rows])
            fresh = [r for r in rows if (r["question_id"], r["mode"]) not in answered]
            insert_attempts(session, [r | {"checkpoint_id": task.checkpoint_id} for r in fresh])

    cache = VideoCache(task.cache_dir) if task.cache_dir is not None else None
    answer_questions(engine, todo, task.config, cache, keep)
    return len(todo)


def evaluate_heldout(
    engine: GenerationEngine,
    store: Store,
    run_id: int,
    checkpoint_id: int,
    config: EvalConfig | None = None,
    cache: VideoCache | None = None,
    progress: Callable[[int, int], None] | None = None,
    split: str = HELDOUT_SPLIT,
    executor: Executor | None = None,
    checkpoint_path: str | None = None,
) -> dict[str, float]:
    """Score the checkpoint on the run's fixed questions of `split` (held-out, or validation) and store
    the figures under that split; {} without any."""
    config = config or EvalConfig()
    round_id = checkpoint_of(store, checkpoint_id).round_id
    with store.session() as session:
        questions = stored_questions(session, run_id, split=split, limit=config.limit)
    if not questions:
        return {}
    zoom = config.zoom.mode
    modes = ("full",) if zoom == "off" else ("full", zoom)
    score_questions(
        engine, store, checkpoint_id, questions, modes, config, cache, progress, executor, checkpoint_path
    )
    ids = [q.id for q in questions]
    with store.write() as session:
        answers = greedy_answers(session, checkpoint_id, ids)
        figures = heldout_metrics(answered_questions(questions, answers))
        write_metrics(session, run_id, round_id, checkpoint_id, split, figures, whole_split=True)
        if zoom != "off":  # the same questions answered with zoom, beside the single pass
            zoomed = heldout_metrics(
                answered_questions(questions, greedy_answers(session, checkpoint_id, ids, zoom))
            )
            zoomed |= zoom_figures(attempt_turns(session, checkpoint_id, ids, zoom))
            write_metrics(
                session, run_id, round_id, checkpoint_id, zoom_split(split, zoom), zoomed, whole_split=True
            )
            figures = figures | {f"{zoom}/{k}": v for k, v in zoomed.items() if "/" not in k}
    return figures


def zoom_split(split: str, mode: str) -> str:
    """The metrics split of a split's answers with zoom, e.g. 'heldout:coarse_to_fine'."""
    return f"{split}:{mode}"


def diagnostics(
    session: Session, run_id: int, round_id: int, checkpoint_id: int | None = None
) -> dict[str, float]:
    """Video dependency, key necessity and key specificity of the round's accepted questions, from their
    stored attempts by mode (of one checkpoint, or of all that answered them)."""
    return paired_diagnostics(mode_accuracies(mode_results(session, run_id, round_id, checkpoint_id)))


def probe_round(
    engine: GenerationEngine,
    store: Store,
    run_id: int,
    round_id: int,
    checkpoint_id: int,
    config: EvalConfig | None = None,
    cache: VideoCache | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, float]:
    """Answer the round's accepted questions in every mode with the checkpoint, store the diagnostics
    (split 'diagnostics'); {} when the round has no accepted questions."""
    config = config or EvalConfig()
    with store.session() as session:
        questions = stored_questions(
            session, run_id, round_id=round_id, status="accepted", limit=config.limit
        )
    if not questions:
        return {}
    score_questions(engine, store, checkpoint_id, questions, ATTEMPT_MODES, config, cache, progress)
    with store.write() as session:
        figures = diagnostics(session, run_id, round_id, checkpoint_id)
        write_metrics(session, run_id, round_id, checkpoint_id, DIAGNOSTICS_SPLIT, figures, whole_split=True)
    return figures


def run_comparison(
    session: Session,
    run_id: int,
    checkpoint_ids: Sequence[int],
    reference: int | None,
    split: str = HELDOUT_SPLIT,
) -> HeldoutComparison:
    """Constant baselines of the run's held-out (or validation) questions and every checkpoint's paired
    change against `reference` (the warm-up, usually); empty when the run has no such questions."""
    questions = stored_questions(session, run_id, split=split)
    ids = [q.id for q in questions]
    wanted = [*checkpoint_ids, *([reference] if reference is not None else [])]
    scores = {
        cid: question_scores(questions, greedy_answers(session, cid, ids)) for cid in dict.fromkeys(wanted)
    }
    return heldout_comparison(questions, scores, reference)
