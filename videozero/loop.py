"""The Video-Zero loop as stage functions over the store: what `videozero iterate` and the Prefect flows
run. Nothing here imports Prefect: the flows in `flows/` wrap each stage as a task.

Run-level stages (once per run): `mine_stage` (mine and attach the videos, split by video),
`learner_stage` (build nano or tiny-qwen on first use, warm it up, record base and warm-up
checkpoints, evaluate both on the held-out questions). Round stages, in order: `question_stage`
(propose + verify with the current solver), `solver_stage` (GRPO on the accepted questions),
`questioner_stage` (GRPO of the model writer on r_Q), `eval_stage` (held-out evaluation and the
paper's diagnostics), `curriculum_stage` (levels and mix of the next round).

Every stage takes ids and paths, reads its inputs from the store and records its status and seconds in
`rounds.stages`; a stage already 'done' is skipped, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from store import Store, default_url, open_store
from store.runs import (
    RunLockedError,
    attach_videos,
    claim_run,
    ensure_round,
    heartbeat,
    release_run,
    run_video_ids,
    set_stage,
    stage_status,
)
from store.tables import Checkpoint, Question, Round, Run
from videozero.errors import VideozeroError
from videozero.memory import releasing_memory
from videozero.progress import ProgressReport
from videozero.questioner.round import solver_checkpoint
from videozero.run_config import RunConfig, evaluation_settings, verify_settings


def open_run_store(config: RunConfig) -> Store:
    """The run's store (created and migrated if needed), one per URL in this process: every stage
    reuses it instead of opening a new connection pool (callers may `dispose()` it; its engine then
    reconnects on the next use)."""
    return _store(config.db or default_url(config.workdir_path))


@functools.cache
def _store(url: str) -> Store:
    return open_store(url)


def run_id_of(store: Store, name: str) -> int:
    with store.session() as s:
        found = s.scalar(select(Run.id).where(Run.name == name))
    if found is None:
        raise VideozeroError(
            f"run {name!r} is not in the store: start it with `videozero iterate --run-name {name}`."
        )
    return int(found)


def round_id_of(store: Store, run_id: int, round_index: int) -> int:
    return ensure_round(store, run_id, round_index)


@contextmanager
def _stage(store: Store, round_id: int, name: str):
    """Run a stage body unless it is done; record 'running', then 'done' with its seconds (the body
    may add details by returning a dict through the yielded list)."""
    with store.session() as s:
        if stage_status(s, round_id, name) == "done":
            yield None
            return
    with store.write() as s:
        set_stage(s, round_id, name, "running")
    started = time.perf_counter()
    box: list[dict[str, Any]] = []
    try:
        yield box
    except BaseException:
        with store.write() as s:
            set_stage(s, round_id, name, "failed", seconds=round(time.perf_counter() - started, 2))
        raise
    with store.write() as s:
        details = box[0] if box else {}
        set_stage(
            s,
            round_id,
            name,
            details.pop("status", "done"),
            seconds=round(time.perf_counter() - started, 2),
            **details,
        )


# --- the lease -------------------------------------------------------------------------------------------


class Lease:
    """The run's lease, renewed by a background thread while the run is driven."""

    def __init__(self, store: Store, config: RunConfig, every: float = 15.0) -> None:
        self.store, self.every = store, every
        self.run_id = claim_run(store, config.run_name, config.model_dump(mode="json"))
        self._stop = threading.Event()
        self.lost: str | None = None
        self._thread = threading.Thread(target=self._beat, daemon=True, name="videozero-lease")
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                heartbeat(self.store, self.run_id)
            except RunLockedError as exc:
                self.lost = str(exc)
                return
            except Exception:
                continue

    def check(self) -> None:
        """Raise if another process took the run over (checked between stages)."""
        if self.lost:
            raise VideozeroError(self.lost)

    def release(self, status: str) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        release_run(self.store, self.run_id, status)


# --- run-level stages ------------------------------------------------------------------------------------


@releasing_memory
def mine_stage(config: RunConfig, run_id: int, progress: ProgressReport | None = None) -> dict[str, Any]:
    """Mine the run's videos (cached per video) and attach them with a train/held-out split."""
    from videozero.evidence.mine import mine_videos
    from videozero.video.samples import default_clips

    store = open_run_store(config)
    round_id = round_id_of(store, run_id, 0)
    out: dict[str, Any] = {}
    with _stage(store, round_id, "mine") as box:
        if box is None:
            with store.session() as s:
                return {
                    "videos": len(run_video_ids(s, run_id, "train") + run_video_ids(s, run_id, "heldout"))
                }
        inputs = [Path(v) for v in config.videos] or default_clips(config.workdir_path)
        missing = [str(p) for p in inputs if not p.exists()]
        if missing and len(missing) == len(inputs):
            raise VideozeroError(f"none of the videos exist ({', '.join(missing[:3])}): check --videos.")
        cache_dir = config.workdir_path / "cache"
        summary = mine_videos(store, inputs, cache_dir=cache_dir, progress=progress)
        held_summary = mine_videos(store, _heldout_inputs(config), cache_dir=cache_dir, progress=progress)
        held = list(dict.fromkeys(_mined_ids(held_summary)))
        ids = [v for v in _mined_ids(summary) if v not in held]
        errors = [*summary.errors, *held_summary.errors]
        if not ids or len(ids) + len(held) < 2:
            raise VideozeroError(
                f"only {len(ids) + len(held)} video could be mined ({len(errors)} failed): a run needs "
                "at least two, one to train on and one held out."
            )
        fixed: dict[int, str] = {}
        for split, paths in _generated_inputs(config).items():
            found = mine_videos(store, paths, cache_dir=cache_dir, progress=progress)
            errors += found.errors
            fixed |= {v: split for v in _mined_ids(found) if v not in held and v not in ids}
        splits = attach_videos(
            store,
            run_id,
            ids,
            config.heldout_fraction,
            eligible=rich_videos(store, ids),
            heldout=held,
            fixed=fixed,
        )
        out = {
            "videos": sum(v in ("train", "heldout") for v in splits.values()),
            "heldout": sum(v == "heldout" for v in splits.values()),
            "validation": sum(v == "validation" for v in splits.values()),
            "warmup": sum(v == "warmup" for v in splits.values()),
            "errors": [f"{r.path}: {r.error}" for r in errors],
        }
        box.append(dict(out))
    return out


def _mined_ids(summary) -> list[int]:
    return [r.video_id for r in summary.results if r.status != "error" and r.video_id is not None]


def _generated_inputs(config: RunConfig) -> dict[str, list[Path]]:
    """The generated scenes of the run's validation set and of its warm-up's extra targets."""
    from videozero.video.samples import generated_scenes

    w = config.learner.warmup
    warm = w.scenes if w.steps and w.source in ("families", "both") else 0
    return {
        "validation": generated_scenes(config.workdir_path, "validation_scene", config.validation_scenes),
        "warmup": generated_scenes(config.workdir_path, "warmup_scene", warm),
    }


def _heldout_inputs(config: RunConfig) -> list[Path]:
    """The videos the run always holds out: `heldout_videos`, else the embedded held-out scenes when
    the run uses the embedded clips."""
    from videozero.video.samples import default_heldout_clips

    if config.heldout_videos is not None:
        paths = [Path(v) for v in config.heldout_videos]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise VideozeroError(f"held-out video {missing[0]} does not exist: check --heldout-videos.")
        return paths
    return [] if config.videos else default_heldout_clips(config.workdir_path)


def rich_videos(
    store: Store, video_ids: list[int], min_segments: int = 4, min_seconds: float = 8.0
) -> set[int]:
    """Videos with enough mined evidence to carry held-out questions of several families."""
    from sqlalchemy import func

    from store.tables import Segment, Video

    with store.session() as s:
        counts = dict(
            s.execute(
                select(Segment.video_id, func.count(Segment.id))
                .where(Segment.video_id.in_(video_ids), Segment.level != "frame")
                .group_by(Segment.video_id)
            ).all()
        )
        durations = dict(s.execute(select(Video.id, Video.duration_s).where(Video.id.in_(video_ids))).all())
    return {
        v for v in video_ids if counts.get(v, 0) >= min_segments and (durations.get(v) or 0) >= min_seconds
    }


def _model_dir(config: RunConfig, kind: str) -> Path:
    return config.workdir_path / "models" / kind


def base_model_path(config: RunConfig, progress: ProgressReport | None = None) -> str:
    """The learner's directory, building nano or tiny-qwen on first use (reused by every later run; a
    nano with visual words or frame recall has a directory of its own)."""
    model = config.learner.model
    if model not in ("nano", "tiny-qwen"):
        return model
    if model == "nano":
        from videozero.models.nano.build import build_name

        learner = config.learner
        path = _model_dir(config, build_name(learner.visual_words, learner.frame_recall, learner.span_frames))
    else:
        path = _model_dir(config, model)
    if (path / "config.json").exists():
        return str(path)
    tmp = path.with_name(f".{path.name}.building")
    if model == "nano":
        from videozero.models.nano.build import build_nano

        steps = config.learner.align_steps

        def aligned(step: int, loss: float) -> None:
            if progress is not None:
                progress("building nano: projector alignment", step, steps, f"loss {loss:.3f}")

        build_nano(
            tmp,
            align_steps=steps,
            visual_words=config.learner.visual_words,
            frame_recall=config.learner.frame_recall,
            span_frames=config.learner.span_frames,
            seed=config.seed,
            progress=aligned,
        )
    else:
        from videozero.models.tiny_qwen import build_tiny_qwen

        build_tiny_qwen(tmp, seed=config.seed)
    tmp.replace(path)
    return str(path)


def warmup_path(
    config: RunConfig,
    base: str,
    progress: ProgressReport | None = None,
    store: Store | None = None,
    run_id: int | None = None,
) -> str | None:
    """The warmed-up learner, trained once per base model, warm-up setting and training videos (the
    template targets come from the run's training videos), then reused."""
    w = config.learner.warmup
    if w.steps == 0:
        return None
    import hashlib

    from videozero.questioner.supervision import template_targets, training_videos, videos_tag

    families = w.source in ("families", "both")
    if families and (store is None or run_id is None):
        raise VideozeroError("a warm-up on the loop's families needs the run's store and training videos.")
    videos = training_videos(store, run_id) if families else []
    key = w.model_dump_json()
    if families:
        q = config.questioner
        key += f"|{videos_tag(store, videos)}|{q.families}|{q.solver_fps}|{q.solver_max_frames}|{config.seed}"
    tag = hashlib.sha1(key.encode()).hexdigest()[:8]
    name = Path(base).name if Path(base).exists() else base.replace("/", "--")
    out = config.workdir_path / "models" / f"{name}-warmup-{tag}"
    if (out / "config.json").exists():
        return str(out)
    from videozero.solver.warmup import matching_steps, warmup, warmup_tasks

    train_q = []
    if families:
        train_q += template_targets(
            store, videos, config.questioner, w.per_video, w.levels, w.seed, config.workdir_path / "cache"
        )
    if w.source in ("generated", "both"):
        train_q += warmup_tasks(w, clip_dir=config.workdir_path / "clips" / "warmup")[0]
    if not train_q:
        raise VideozeroError(
            "the warm-up found no template question on the training videos: add longer videos with "
            "several shots or events, or set learner.warmup.source to generated."
        )
    drills = []
    if families and w.matching.steps:
        from videozero.questioner.evidence import load_video_evidence
        from videozero.solver.matching import matching_drills

        cache = config.workdir_path / "cache"
        evidence = [load_video_evidence(store, v, cache) for v in videos]
        drills = matching_drills(evidence, w.matching.drills, w.matching, w.seed)

    def drilled(step: int, loss: float) -> None:
        if progress is not None:
            progress("matching drills", step, w.matching.steps, f"loss {loss:.3f}")

    def train(lm, step: Callable[[int, float], None]) -> None:
        if drills:
            matching_steps(lm, drills, w, drilled)
        warmup(lm, train_q, w, step)

    _train_and_save(base, out, train, "warm-up", w.steps, progress)
    return str(out)


@releasing_memory
def _train_and_save(
    start: str, out: Path, train: Callable, label: str, steps: int, progress: ProgressReport | None
) -> None:
    """Load `start`, `train(lm, stepped)` it with a progress bar, and save it at `out` (written aside,
    then moved into place: a killed save leaves no half checkpoint that looks done)."""
    from videozero.models.loader import load_model
    from videozero.solver.training import save_checkpoint

    lm = load_model(start, device="auto")

    def stepped(step: int, loss: float) -> None:
        if progress is not None:
            progress(label, step, steps, f"loss {loss:.3f}")

    train(lm, stepped)
    tmp = out.with_name(f".{out.name}.saving")
    save_checkpoint(lm, tmp)
    tmp.replace(out)


def writer_warmup(
    config: RunConfig,
    start: str,
    progress: ProgressReport | None,
    store: Store,
    run_id: int,
    measure: bool = True,
) -> tuple[int, dict[str, float] | None] | None:
    """The questioner's warm-up checkpoint (supervised writes in the writer's format on the training
    videos, from the warmed-up solver), trained once per setting and videos, and how its greedy writes
    on the validation videos fare (`write_rates`, only when `measure`); None when the run writes no
    model questions."""
    w = config.questioner_training.warmup
    if config.writer == "template" or w.steps == 0 or config.questioner_training.steps == 0:
        return None
    import hashlib

    from videozero.questioner.supervision import training_videos, videos_tag
    from videozero.questioner.warmup import video_writer_inputs, warm_up_writer, write_rates, writer_targets

    sampling = config.questioner.solver_sampling.sampling
    cache = config.workdir_path / "cache"
    videos = training_videos(store, run_id)
    key = f"{w.model_dump_json()}|{videos_tag(store, videos)}|{sampling.key}|{start}|{config.seed}"
    out = (
        config.workdir_path
        / "models"
        / f"{Path(start).name}-writer-{hashlib.sha1(key.encode()).hexdigest()[:8]}"
    )
    if not (out / "config.json").exists():
        pairs = writer_targets(store, videos, sampling, w.per_video, w.seed, cache)
        if not pairs:
            raise VideozeroError(
                "the questioner warm-up found no write to learn on the training videos: add longer videos "
                "with several shots, or set questioner_training.warmup.steps to 0."
            )
        train = lambda lm, step: warm_up_writer(lm, pairs, w, step)  # noqa: E731
        _train_and_save(start, out, train, "questioner warm-up", w.steps, progress)
    rates = None
    if measure:
        with store.session() as s:
            videos = run_video_ids(s, run_id, "validation") or run_video_ids(s, run_id, "train")
        spans = max(3, config.questioner.model_spans_per_video)
        inputs = video_writer_inputs(store, videos, sampling, spans, cache)
        rates = write_rates(_engine(str(out)), inputs, config.questioner_training.max_new_tokens)
    with store.session() as s:
        found = s.scalar(
            select(Checkpoint.id).where(
                Checkpoint.run_id == run_id, Checkpoint.role == "questioner", Checkpoint.path == str(out)
            )
        )
    if found is None:
        from videozero.solver.training import record_checkpoint

        found = record_checkpoint(store, out, start, "warmup", "questioner", run_id)
    return int(found), rates


@releasing_memory
def learner_stage(config: RunConfig, run_id: int, progress: ProgressReport | None = None) -> dict[str, Any]:
    """Base and warmed-up learner checkpoints of the run (built and warmed up on first use)."""
    store = open_run_store(config)
    round_id = round_id_of(store, run_id, 0)
    out: dict[str, Any] = {}
    with _stage(store, round_id, "learner") as box:
        base = base_model_path(config, progress)
        out["base"] = solver_checkpoint(store, run_id, base, "base")
        warm = warmup_path(config, base, progress, store, run_id)
        if warm is not None:
            out["warmup"] = solver_checkpoint(store, run_id, warm, "warmup", base)
        # its writes are measured once, when the stage runs (not again on every resume)
        writer = writer_warmup(config, warm or base, progress, store, run_id, measure=box is not None)
        if writer is not None:
            out["questioner_warmup"], out["questioner_writes"] = writer
        if box is not None:
            box.append(dict(out))
    return out


def heldout_stage(config: RunConfig, run_id: int) -> int:
    """The run's fixed held-out questions (created once, from the held-out videos)."""
    from videozero.questioner.round import ensure_heldout

    store = open_run_store(config)
    return ensure_heldout(store, run_id, config.questioner, config.workdir_path / "cache")


def _solver_rows(store: Store, run_id: int):
    with store.session() as s:
        return s.execute(
            select(Checkpoint.id, Checkpoint.path, Checkpoint.stage, Round.round_index)
            .outerjoin(Round, Round.id == Checkpoint.round_id)
            .where(Checkpoint.run_id == run_id, Checkpoint.role == "solver")
        ).all()


def latest_solver(store: Store, run_id: int, round_index: int) -> tuple[int, str]:
    """(checkpoint id, path) of the newest GRPO checkpoint of a round before `round_index`, else the
    warm-up, else the base: what round `round_index - 1` ended with."""
    rows = _solver_rows(store, run_id)
    grpo = [
        r for r in rows if r.stage == "grpo" and r.round_index is not None and r.round_index < round_index
    ]
    if grpo:
        best = max(grpo, key=lambda r: (r.round_index, r.id))
        return int(best.id), str(best.path)
    for stage in ("warmup", "base"):
        found = [r for r in rows if r.stage == stage]
        if found:
            best = max(found, key=lambda r: r.id)
            return int(best.id), str(best.path)
    raise VideozeroError(f"run {run_id} has no solver checkpoint yet: the learner stage has not run.")


def validation_accuracy(store: Store, run_id: int) -> dict[int, float]:
    """Checkpoint id -> its accuracy on the run's validation questions (those scored so far)."""
    from store.tables import Metric

    with store.session() as s:
        return {
            int(c): float(v)
            for c, v in s.execute(
                select(Metric.checkpoint_id, Metric.value).where(
                    Metric.run_id == run_id, Metric.split == "validation", Metric.name == "accuracy"
                )
            )
            if c is not None
        }


def current_solver(store: Store, run_id: int, round_index: int) -> tuple[int, str]:
    """(checkpoint id, path) round `round_index` starts from: what the last round ended with, unless the
    warm-up or an earlier round's checkpoint scored higher on the validation questions (then that one:
    a round that made the solver worse is not built on)."""
    latest = latest_solver(store, run_id, round_index)
    scores = validation_accuracy(store, run_id)
    if latest[0] not in scores:
        return latest
    rows = [
        r
        for r in _solver_rows(store, run_id)
        if r.id in scores
        and (
            r.stage == "warmup"
            or (r.stage == "grpo" and r.round_index is not None and r.round_index < round_index)
        )
    ]
    best = max(rows, key=lambda r: (scores[r.id], r.id), default=None)
    if best is None or scores[best.id] <= scores[latest[0]]:
        return latest
    return int(best.id), str(best.path)


def _engine(path: str):
    from videozero.models.engines.transformers_engine import TransformersEngine
    from videozero.models.loader import load_model

    return TransformersEngine(load_model(path, device="auto"))


def curriculum_state(store: Store, run_id: int, round_index: int, config: RunConfig):
    """The curriculum the round runs at: the state stored by the previous round, else the start."""
    from videozero.curriculum import CurriculumScheduler, CurriculumState

    sched = CurriculumScheduler(config.curriculum)
    if round_index > 0:
        with store.session() as s:
            prev = s.scalar(
                select(Round.curriculum).where(Round.run_id == run_id, Round.round_index == round_index - 1)
            )
        if prev and prev.get("families"):
            return CurriculumState.model_validate(prev)
    return sched.initial(list(config.questioner.families))


@releasing_memory
def question_stage(
    config: RunConfig, run_id: int, round_index: int, progress: ProgressReport | None = None
) -> dict[str, Any]:
    """The questioner phase: propose on the training videos at the curriculum's levels and mix, verify
    with the current solver, store everything."""
    from videozero.questioner.model_writer import model_writer
    from videozero.questioner.round import question_round
    from videozero.questioner.writer import WriterConfig
    from videozero.video.cache import VideoCache

    store = open_run_store(config)
    round_id = round_id_of(store, run_id, round_index)
    out: dict[str, Any] = {}
    with _stage(store, round_id, "question") as box:
        if box is None:
            return out
        state = curriculum_state(store, run_id, round_index, config)
        ckpt, path = current_solver(store, run_id, round_index)
        engine = _engine(path)
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
            q_engine = engine if q_path == path else _engine(q_path)
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
        )
        out = {
            "proposed": sum(sum(c.values()) for c in summary.counts.values()),
            "accepted": sum(c["accepted"] for c in summary.counts.values()),
            "verified_by": ckpt,
        }
        box.append(dict(out))
    return out


def whole_video(ev):
    """The ablation without evidence anchoring: the video's mined event spans are replaced by equal
    windows over the whole video, all equally salient, so questions are not anchored to evidence."""
    from dataclasses import replace

    from videozero.questioner.evidence import SegmentView

    shots = [s for s in ev.segments if s.level == "shot"]
    n = max(2, len(ev.of_level("event")))
    step = ev.duration / n
    windows = [
        SegmentView(None, "event", round(i * step, 3), round((i + 1) * step, 3), 0.5, {}, ())
        for i in range(n)
    ]
    labelled = {s.span: s.labels for s in ev.segments}
    windows = [replace(w, labels=labelled.get(w.span, ())) for w in windows]
    return replace(ev, segments=[*shots, *windows])


def current_questioner(store: Store, run_id: int, round_index: int) -> str | None:
    """The newest questioner checkpoint of an earlier round, else the questioner's warm-up (None: the
    questioner is the solver model)."""
    with store.session() as s:
        row = s.execute(
            select(Checkpoint.path)
            .join(Round, Round.id == Checkpoint.round_id)
            .where(
                Checkpoint.run_id == run_id, Checkpoint.role == "questioner", Round.round_index < round_index
            )
            .order_by(Round.round_index.desc(), Checkpoint.id.desc())
        ).first()
        if row is None:
            row = s.execute(
                select(Checkpoint.path)
                .where(
                    Checkpoint.run_id == run_id, Checkpoint.role == "questioner", Checkpoint.stage == "warmup"
                )
                .order_by(Checkpoint.id.desc())
            ).first()
    return str(row[0]) if row else None


def solver_settings(config: RunConfig, round_index: int):
    """The round's GRPO settings: seeded per round; no alignment reward when the ablation turns it off."""
    gcfg = config.solver
    if not config.ablation.use_alignment:
        gcfg = gcfg.model_copy(update={"weights": gcfg.weights.model_copy(update={"alpha": 0.0})})
    return gcfg.model_copy(update={"seed": config.seed * 1009 + round_index})


@releasing_memory
def solver_stage(
    config: RunConfig, run_id: int, round_index: int, progress: Callable | None = None
) -> dict[str, Any]:
    """GRPO of the solver on the round's accepted questions; the checkpoint is saved and recorded."""
    from videozero.questioner.round import accepted_solver_questions
    from videozero.solver.round import train_solver_round

    store = open_run_store(config)
    round_id = round_id_of(store, run_id, round_index)
    out: dict[str, Any] = {}
    with _stage(store, round_id, "solver") as box:
        if box is None:
            return out
        ckpt, path = current_solver(store, run_id, round_index)
        questions = accepted_solver_questions(
            store, run_id, round_id, config.questioner.solver_sampling.sampling, config.workdir_path / "cache"
        )
        if not questions:
            box.append({"status": "skipped", "reason": "no accepted questions", "from": ckpt})
            return {"skipped": "no accepted questions"}
        gcfg = solver_settings(config, round_index)
        result = train_solver_round(
            path,
            questions,
            config.run_dir / f"round-{round_index}" / "solver",
            gcfg,
            progress=progress,
        )
        new = solver_checkpoint(store, run_id, str(result.path), "grpo", path, round_id)
        steps = result.report.steps
        out = {
            "checkpoint": new,
            "from": ckpt,
            "questions": len(questions),
            "steps": len(steps),
            "reward_first": round(steps[0].reward, 4) if steps else None,
            "reward_last": round(steps[-1].reward, 4) if steps else None,
        }
        box.append(dict(out))
    return out


@releasing_memory
def questioner_stage(config: RunConfig, run_id: int, round_index: int) -> dict[str, Any]:
    """GRPO of the model writer on r_Q against the round's frozen solver (only when the model writes)."""
    from videozero.questioner.training import train_questioner_round

    store = open_run_store(config)
    round_id = round_id_of(store, run_id, round_index)
    out: dict[str, Any] = {}
    with _stage(store, round_id, "questioner") as box:
        if box is None:
            return out
        if config.writer == "template" or config.questioner_training.steps == 0:
            box.append({"status": "skipped", "reason": "templates only"})
            return {"skipped": "templates only"}
        _, solver_path = current_solver(store, run_id, round_index)
        q_path = current_questioner(store, run_id, round_index) or solver_path
        qt = config.questioner_training.model_copy(
            update={
                "verify": config.questioner_training.verify.model_copy(
                    update={"use_r_dep": config.ablation.use_r_dep}
                ),
                "seed": config.seed * 1013 + round_index,
            }
        )
        ckpt, report = train_questioner_round(
            store,
            run_id,
            round_id,
            q_path,
            _engine(solver_path),
            config.run_dir / f"round-{round_index}" / "questioner",
            qt,
            config.questioner.solver_sampling.sampling,
            config.workdir_path / "cache",
        )
        out = {
            "checkpoint": ckpt,
            "writes": sum(s.writes for s in report.steps),
            "parsed": sum(s.parsed for s in report.steps),
            "mean_r_q": round(sum(s.mean_r_q for s in report.steps) / max(1, len(report.steps)), 4),
        }
        box.append(dict(out))
    return out


@releasing_memory
def evaluate_checkpoint(config: RunConfig, run_id: int, checkpoint_id: int) -> dict[str, float]:
    """Held-out figures of one checkpoint, and its validation figures unless it is the base (answers
    already stored are not asked again)."""
    from videozero.evaluation.heldout import VALIDATION_SPLIT, evaluate_heldout

    store = open_run_store(config)
    with store.session() as s:
        row = s.get(Checkpoint, checkpoint_id)
        path, stage = row.path, row.stage
    ecfg = evaluation_settings(config)
    engine = _engine(path)
    figures = evaluate_heldout(engine, store, run_id, checkpoint_id, ecfg)
    if stage != "base":  # the base writes no answer format: nothing to choose it on
        evaluate_heldout(engine, store, run_id, checkpoint_id, ecfg, split=VALIDATION_SPLIT)
    return figures


@releasing_memory
def eval_stage(config: RunConfig, run_id: int, round_index: int) -> dict[str, Any]:
    """Held-out evaluation of the round's solver and the paper's diagnostics on its accepted questions."""
    from videozero.evaluation.heldout import probe_round

    store = open_run_store(config)
    round_id = round_id_of(store, run_id, round_index)
    out: dict[str, Any] = {}
    with _stage(store, round_id, "eval") as box:
        if box is None:
            return out
        ckpt, path = latest_solver(store, run_id, round_index + 1)
        ecfg = evaluation_settings(config)
        engine = _engine(path)
        from videozero.evaluation.heldout import VALIDATION_SPLIT, evaluate_heldout

        figures = evaluate_heldout(engine, store, run_id, ckpt, ecfg)
        valid = evaluate_heldout(engine, store, run_id, ckpt, ecfg, split=VALIDATION_SPLIT)
        out = {
            "checkpoint": ckpt,
            "accuracy": figures.get("accuracy"),
            "mIoU": figures.get("mIoU"),
            "validation_accuracy": valid.get("accuracy"),
        }
        if config.eval.diagnostics:
            dcfg = ecfg.model_copy(update={"limit": config.eval.diagnostics_limit})
            diag = probe_round(engine, store, run_id, round_id, ckpt, dcfg)
            out |= {k: diag.get(k) for k in ("video_dependency", "key_necessity", "key_specificity")}
        box.append(dict(out))
    return out


def curriculum_stage(config: RunConfig, run_id: int, round_index: int) -> dict[str, Any]:
    """The next round's levels and mix from this round's verification, stored with their reasons."""
    from videozero.curriculum import CurriculumScheduler
    from videozero.questioner.round import family_measurements

    store = open_run_store(config)
    round_id = round_id_of(store, run_id, round_index)
    with store.session() as s:
        if stage_status(s, round_id, "curriculum") == "done":
            return dict(s.get(Round, round_id).curriculum or {})
    state = curriculum_state(store, run_id, round_index, config)
    measured = family_measurements(store, round_id)
    nxt = CurriculumScheduler(config.curriculum).update(state, measured)
    payload = nxt.model_dump() | {"measured": {f: m.model_dump() for f, m in measured.items()}}
    with store.write() as s:
        row = s.get(Round, round_id)
        row.curriculum = payload
        row.finished_at = row.finished_at or _now()
        set_stage(s, round_id, "curriculum", "done")
    return payload


def _now():
    from store.tables import utcnow

    return utcnow()


ROUND_STAGES = ("question", "solver", "questioner", "eval", "curriculum")


def rounds_done(store: Store, run_id: int) -> int:
    """How many rounds of the run finished their last stage."""
    with store.session() as s:
        rows = s.execute(select(Round.id).where(Round.run_id == run_id)).all()
        return sum(stage_status(s, r.id, "curriculum") == "done" for r in rows)


def accepted_count(store: Store, run_id: int) -> int:
    with store.session() as s:
        return len(
            s.scalars(
                select(Question.id).where(
                    Question.run_id == run_id, Question.status == "accepted", Question.split == "train"
                )
            ).all()
        )


@dataclass
class StageTiming:
    stage: str
    seconds: float
    status: str


def stage_timings(store: Store, round_id: int) -> list[StageTiming]:
    """Seconds and status of each stage the round recorded."""
    with store.session() as s:
        stages = dict(s.get(Round, round_id).stages or {})
    out = []
    for name, value in stages.items():
        if isinstance(value, dict):
            out.append(
                StageTiming(name, float(value.get("seconds", 0.0) or 0.0), str(value.get("status", "")))
            )
    return out
