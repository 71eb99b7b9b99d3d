"""The learner stage: the run's base learner (nano or tiny-qwen built on first use), its warm-up and the
questioner's warm-up, each trained once per setting and training videos and recorded as checkpoints."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from store import Store
from store.checkpoints import checkpoint_row
from store.runs import run_video_ids, training_video_ids
from store.videos import videos_tag
from videozero.errors import VideozeroError
from videozero.memory import releasing_memory
from videozero.models.engines.transformers_engine import load_engine
from videozero.models.loader import load_model
from videozero.models.nano.build import build_name, build_nano
from videozero.models.tiny_qwen import build_tiny_qwen
from videozero.progress import ProgressReport
from videozero.questioner.supervision import template_targets
from videozero.questioner.warmup import video_writer_inputs, warm_up_writer, write_rates, writer_targets
from videozero.run_config import RunConfig
from videozero.solver.matching import matching_drills
from videozero.solver.training import save_checkpoint
from videozero.solver.warmup import matching_steps, warmup, warmup_tasks
from videozero.stages.evidence import evidence_loader, load_video_evidence
from videozero.stages.run import open_run_store, round_id_of, stage_record
from videozero.zoom_config import ZoomToolSettings


@releasing_memory
def learner_stage(config: RunConfig, run_id: int, progress: ProgressReport | None = None) -> dict[str, Any]:
    """Base and warmed-up learner checkpoints of the run (built and warmed up on first use)."""
    store = open_run_store(config)
    round_id = round_id_of(store, run_id, 0)
    out: dict[str, Any] = {}
    with stage_record(store, round_id, "learner") as box:
        base = base_model_path(config, progress)
        out["base"] = checkpoint_row(store, base, "base", run_id=run_id)
        warm = warmup_path(config, base, progress, store, run_id)
        if warm is not None:
            out["warmup"] = checkpoint_row(store, warm, "warmup", run_id=run_id, base_model=base)
        # its writes are measured once, when the stage runs (not again on every resume)
        writer = writer_warmup(config, warm or base, progress, store, run_id, measure=box is not None)
        if writer is not None:
            out["questioner_warmup"], out["questioner_writes"] = writer
        if box is not None:
            box.append(dict(out))
    return out


def _model_dir(config: RunConfig, kind: str) -> Path:
    return config.workdir_path / "models" / kind


def base_model_path(config: RunConfig, progress: ProgressReport | None = None) -> str:
    """The learner's directory, building nano or tiny-qwen on first use (reused by every later run; a
    nano with visual words or frame recall has a directory of its own)."""
    model = config.learner.model
    if model not in ("nano", "tiny-qwen"):
        return model
    learner = config.learner
    if model == "nano":
        path = _model_dir(config, build_name(learner.visual_words, learner.frame_recall, learner.span_frames))
    else:
        path = _model_dir(config, model)
    if (path / "config.json").exists():
        return str(path)
    tmp = path.with_name(f".{path.name}.building")
    if model == "nano":
        steps = learner.align_steps

        def aligned(step: int, loss: float) -> None:
            if progress is not None:
                progress("building nano: projector alignment", step, steps, f"loss {loss:.3f}")

        build_nano(
            tmp,
            align_steps=steps,
            visual_words=learner.visual_words,
            frame_recall=learner.frame_recall,
            span_frames=learner.span_frames,
            seed=config.seed,
            progress=aligned,
        )
    else:
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
    families = w.source in ("families", "both")
    if families and (store is None or run_id is None):
        raise VideozeroError("a warm-up on the loop's families needs the run's store and training videos.")
    videos = training_video_ids(store, run_id) if families else []
    # a warm-up without tool targets keeps the key it had before they existed (its checkpoint is reused)
    key = w.model_dump_json(exclude={"tool_fraction"} if not w.tool_fraction else None)
    if w.tool_fraction:
        key += f"|{(config.solver.tool or ZoomToolSettings()).model_dump_json()}"
    if families:
        q = config.questioner
        key += f"|{videos_tag(store, videos)}|{q.families}|{q.solver_fps}|{q.solver_max_frames}|{config.seed}"
    tag = hashlib.sha1(key.encode()).hexdigest()[:8]
    name = Path(base).name if Path(base).exists() else base.replace("/", "--")
    out = config.workdir_path / "models" / f"{name}-warmup-{tag}"
    if (out / "config.json").exists():
        return str(out)
    cache = config.workdir_path / "cache"
    train_q = []
    if families:
        train_q += template_targets(
            evidence_loader(store, cache), videos, config.questioner, w.per_video, w.levels, w.seed, cache
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
        evidence = [load_video_evidence(store, v, cache) for v in videos]
        drills = matching_drills(evidence, w.matching.drills, w.matching, w.seed)

    def drilled(step: int, loss: float) -> None:
        if progress is not None:
            progress("matching drills", step, w.matching.steps, f"loss {loss:.3f}")

    def train(lm, step: Callable[[int, float], None]) -> None:
        if drills:
            matching_steps(lm, drills, w, drilled)
        warmup(lm, train_q, w, step, config.solver.tool)

    _train_and_save(base, out, train, "warm-up", w.steps, progress)
    return str(out)


@releasing_memory
def _train_and_save(
    start: str, out: Path, train: Callable, label: str, steps: int, progress: ProgressReport | None
) -> None:
    """Load `start`, `train(lm, stepped)` it with a progress bar, and save it at `out` (written aside,
    then moved into place by `save_checkpoint`: a killed save leaves no half checkpoint that looks done)."""
    lm = load_model(start, device="auto")

    def stepped(step: int, loss: float) -> None:
        if progress is not None:
            progress(label, step, steps, f"loss {loss:.3f}")

    train(lm, stepped)
    save_checkpoint(lm, out)


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
    sampling = config.questioner.solver_sampling.sampling
    cache = config.workdir_path / "cache"
    videos = training_video_ids(store, run_id)
    key = f"{w.model_dump_json()}|{videos_tag(store, videos)}|{sampling.key}|{start}|{config.seed}"
    out = (
        config.workdir_path
        / "models"
        / f"{Path(start).name}-writer-{hashlib.sha1(key.encode()).hexdigest()[:8]}"
    )
    if not (out / "config.json").exists():
        pairs = writer_targets(evidence_loader(store, cache), videos, sampling, w.per_video, w.seed, cache)
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
        inputs = video_writer_inputs(evidence_loader(store, cache), videos, sampling, spans, cache)
        rates = write_rates(load_engine(str(out)), inputs, config.questioner_training.max_new_tokens)
    found = checkpoint_row(store, out, "warmup", role="questioner", run_id=run_id, base_model=start)
    return found, rates
