"""`videozero eval`: score checkpoints on the run's held-out questions, the round diagnostics and a
benchmark, then print the run's figures side by side and plot them."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Annotated

import typer

from videozero.cli.common import (
    DbOption,
    ExecutorOpt,
    RayAddressOpt,
    console,
    executor_from,
    resolve_db,
    workdir_default,
)
from videozero.errors import VideozeroError

REFERENCES = ("all", "base", "warmup")


def _is_reference(model: str) -> bool:
    return model in REFERENCES or model.startswith("round:")


def select_columns(columns: list, model: str, run: str) -> list:
    """The run's checkpoints a `--model` reference names (all, base, warmup, round:N)."""
    from videozero.reports.comparison import Column

    have = ", ".join(c.label for c in columns) or "none"
    if model == "all":
        chosen = columns
    elif model in ("base", "warmup"):
        chosen = [c for c in columns if c.stage == model][-1:]
    else:
        index = model.removeprefix("round:")
        if not index.isdigit():
            raise VideozeroError(
                f"--model {model!r} is not a round reference: write round:N with N a round index, e.g. round:0."
            )
        chosen = [c for c in columns if c.stage in ("grpo", "preference") and c.round_index == int(index)]
    if not chosen:
        raise VideozeroError(f"run {run!r} has no solver checkpoint for {model!r} (its checkpoints: {have}).")
    return [c for c in chosen if isinstance(c, Column)]


def _pick_run(session, run: str | None) -> tuple[int, str] | None:
    from store.queries import run_id
    from store.runs import run_names

    if run is not None:
        return run_id(session, run), run
    names = run_names(session)
    if len(names) > 1:
        raise VideozeroError(
            f"the store holds {len(names)} runs ({', '.join(names[:5])}): pick one with --run."
        )
    return (run_id(session, names[0]), names[0]) if names else None


def eval_command(
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="a checkpoint directory or model id, or a checkpoint of the run: round:N, base, warmup, all",
            show_default=False,
        ),
    ],
    run: Annotated[str | None, typer.Option("--run", help="run name (default: the store's only run)")] = None,
    benchmark: Annotated[
        str | None, typer.Option("--benchmark", help="also evaluate on this benchmark, e.g. asl_grounding")
    ] = None,
    annotations: Annotated[
        Path | None,
        typer.Option(
            "--annotations",
            help="the benchmark's annotation file (ASL: <workdir>/benchmarks/asl_grounding/items.jsonl)",
        ),
    ] = None,
    videos: Annotated[
        Path | None,
        typer.Option(
            "--videos", help="folder of the benchmark's videos (default: videos/ beside the annotations)"
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="at most N questions and N benchmark items")
    ] = None,
    heldout: Annotated[
        bool,
        typer.Option(
            "--heldout/--no-heldout", help="score the run's held-out questions and round diagnostics"
        ),
    ] = True,
    out: Annotated[
        Path | None, typer.Option("--out", help="PNG plot (default: <workdir>/reports/<run>-eval.png)")
    ] = None,
    fps: Annotated[
        float | None,
        typer.Option("--fps", min=0.01, help="frames per second of video (default: the run's, else 2)"),
    ] = None,
    max_frames: Annotated[
        int | None,
        typer.Option(
            "--max-frames", min=1, help="at most this many frames per video (default: the run's, else 32)"
        ),
    ] = None,
    short_side: Annotated[
        int | None, typer.Option("--short-side", min=16, help="frame short side in pixels (default 224)")
    ] = None,
    max_new_tokens: Annotated[
        int | None,
        typer.Option("--max-new-tokens", min=8, help="answer length cap (default: the run's, else 96)"),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
    zoom: Annotated[
        str | None,
        typer.Option(
            "--zoom",
            help="also answer with zoom: coarse_to_fine (Zoom-Zero) or zoom_tool (VideoZoomer's multi-turn "
            "tool); figures beside the single pass (default: the run's eval.zoom.mode)",
        ),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N")] = "auto",
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="work directory (default: $VIDEOZERO_WORKDIR or ./videozero_work)"),
    ] = None,
    db: DbOption = None,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Evaluate checkpoints (held-out questions, diagnostics, a benchmark) and compare the run's rounds."""
    from store import StoreError, open_store
    from videozero.evaluation.benchmarks import BENCHMARKS, benchmark_items
    from videozero.models.source import check_model_source, offline
    from videozero.zoom_config import ZOOM_MODES

    workdir = workdir or workdir_default()
    if model.startswith("round:") and not model.removeprefix("round:").isdigit():
        raise VideozeroError(
            f"--model {model!r} is not a round reference: write round:N with N a round index, e.g. round:0."
        )
    if zoom is not None and zoom not in ("off", *ZOOM_MODES):
        raise VideozeroError(f"--zoom {zoom!r} is not a zoom mode: use coarse_to_fine, zoom_tool or off.")
    if annotations is not None and benchmark is None:
        raise VideozeroError("--annotations needs --benchmark NAME to say how to read the file.")
    if benchmark is not None:
        if benchmark not in BENCHMARKS:
            raise VideozeroError(f"unknown benchmark {benchmark!r}: choose one of {', '.join(BENCHMARKS)}.")
        if annotations is None:
            if benchmark != "asl_grounding":
                raise VideozeroError(
                    f"--benchmark {benchmark} needs --annotations FILE (its annotation file)."
                )
            annotations = workdir / "benchmarks" / "asl_grounding" / "items.jsonl"
        if not annotations.is_file():
            raise VideozeroError(
                f"the annotation file {annotations} does not exist: pass the benchmark's file with --annotations."
            )
        if videos is not None and not videos.is_dir():
            raise VideozeroError(
                f"--videos {videos} is not a folder: pass the folder holding the benchmark's videos."
            )
    read = benchmark_items(benchmark, annotations, videos, limit) if benchmark is not None else None
    if not _is_reference(model):
        check_model_source(model, offline())  # before any checkpoint of the run is scored
    given = {
        k: v
        for k, v in {
            "fps": fps, "max_frames": max_frames, "short_side": short_side, "max_new_tokens": max_new_tokens,
        }.items()
        if v is not None
    }  # fmt: skip

    url = resolve_db(db, workdir)
    store = None
    if _is_reference(model) or run is not None or db is not None:
        store = open_store(url, create=False)
    else:
        try:
            store = open_store(url, create=False)
        except StoreError:  # no store: a plain model is evaluated on the benchmark alone
            store = None
    picked = None
    if store is not None:
        with store.session() as session:
            picked = _pick_run(session, run)
    # the reports and the stages import the model libraries: only once the flags and the store are checked
    from videozero.reports.comparison import Column, Report, report_plot, report_table
    from videozero.stages.report import run_columns, run_report
    from videozero.video.cache import VideoCache

    columns: list[Column] = run_columns(store, picked[0]) if store is not None and picked is not None else []
    if _is_reference(model):
        if picked is None:
            raise VideozeroError(
                "the store holds no runs, so there are no rounds to evaluate: pass a model directory."
            )
        targets = select_columns(columns, model, picked[1])
    else:
        same = [
            c
            for c in columns
            if c.path and Path(c.path).expanduser().resolve() == Path(model).expanduser().resolve()
        ]
        targets = same[-1:] or [Column(Path(model).name or model, None, "", None, model)]
        if not same and picked is not None and heldout:
            # a model from outside the run is scored on the run's held-out questions with the run's
            # settings and stored beside its checkpoints (stage 'external': never trained from)
            from store.checkpoints import checkpoint_row

            cid = checkpoint_row(store, model, "external", run_id=picked[0])
            targets = [Column(Path(model).name or model, cid, "external", None, model)]
    if benchmark is None and (picked is None or not heldout):
        raise VideozeroError("nothing to evaluate: pass --benchmark NAME, or --run with held-out questions.")
    config = _settings(store, picked, heldout, given, batch_size, limit)
    if zoom is not None:  # zoom adds answers beside the single pass: the stored figures stay comparable
        config = config.model_copy(update={"zoom": config.zoom.model_copy(update={"mode": zoom})})

    cache = VideoCache(workdir / "cache")
    fan = executor_from(executor, ray_address)
    if fan.is_ray and store is not None:
        from videozero.stages.preflight import check_shared_store

        check_shared_store(store)
    extra = []
    notes: list[str] = []
    for target in targets:
        figures_here = _evaluate_one(
            target, store, picked, benchmark, read, heldout, config, cache, device, notes, fan
        )
        if target.checkpoint_id is None:
            extra.append((target, figures_here))

    if picked is not None:
        report = run_report(store, picked[0], picked[1], extra)
        name = picked[1]
    else:
        report = Report("", [c for c, _ in extra], {})
        for column, figures in extra:
            for key, value in figures.items():
                report.values.setdefault(key, {})[column.label] = value
        name = "models"
    console.print(report_table(report))
    for note in dict.fromkeys(notes):
        console.print(f"note: {note}", highlight=False)
    path = report_plot(report, out or workdir / "reports" / f"{name}-eval.png")
    console.print(f"plot: {path}", highlight=False)


def _settings(store, picked, heldout: bool, given: dict, batch_size: int, limit: int | None):
    """The evaluation settings: the run's own (its frame budget) when a run is picked, so that its
    stored figures stay comparable; flags that contradict them are refused for its held-out questions.
    Without a run, the flags over the authors' protocol (2 fps, 32 frames)."""
    from videozero.evaluation.runner import EvalConfig
    from videozero.run_config import evaluation_settings
    from videozero.stages.run import run_config_of

    base = EvalConfig()
    stored = run_config_of(store, picked[0]) if picked is not None else None
    if stored is not None:
        base = evaluation_settings(stored)
        differ = {k: v for k, v in given.items() if getattr(base, k) != v}
        if differ and heldout:
            k, v = next(iter(differ.items()))
            raise VideozeroError(
                f"run {picked[1]} scores its checkpoints with {k.replace('_', '-')} {getattr(base, k)}, "
                f"not {v}: drop --{k.replace('_', '-')} (or pass --no-heldout to score only the benchmark)."
            )
    return base.model_copy(update={**given, "batch_size": batch_size, "limit": limit})


def _evaluate_one(
    target, store, picked, benchmark, read, heldout, config, cache, device, notes, fan=None
) -> dict:
    """Evaluate one model; stored checkpoints get their figures written, others have them returned.
    `read` is the benchmark's (items with a video, video summary, reader notes), read once up front."""
    from store.checkpoints import checkpoint_of
    from store.metrics import write_metrics
    from videozero.evaluation.runner import evaluate_items
    from videozero.models.engines.transformers_engine import TransformersEngine
    from videozero.models.loader import load_model
    from videozero.stages.evaluate import evaluate_heldout, probe_round
    from videozero.zoom_config import ZoomEvalSettings

    figures: dict = {}
    lm = load_model(target.path, device=device)
    engine = TransformersEngine(lm, config.batch_size)
    cid = target.checkpoint_id
    if cid is not None and heldout:
        with console.status(f"{target.label}: held-out questions"):
            got = evaluate_heldout(
                engine, store, picked[0], cid, config, cache, executor=fan, checkpoint_path=str(target.path)
            )
        if not got:
            notes.append(f"run {picked[1]} has no held-out questions (split 'heldout') to score.")
        round_id = checkpoint_of(store, cid).round_id
        if round_id is not None:
            with console.status(f"{target.label}: diagnostics on the round's accepted questions"):
                if not probe_round(engine, store, picked[0], round_id, cid, config, cache):
                    notes.append(f"{target.label} has no accepted questions in its round: no diagnostics.")
    if benchmark is not None:
        items, summary, reader_notes = read
        with console.status(f"{target.label}: {benchmark}"):
            figures_read, _, _ = evaluate_items(
                engine, benchmark, items, config.model_copy(update={"zoom": ZoomEvalSettings()}), cache
            )
        if config.zoom.mode != "off":  # the same items with zoom, under their own split
            with console.status(f"{target.label}: {benchmark} with {config.zoom.mode}"):
                zoomed, _, _ = evaluate_items(engine, benchmark, items, config, cache)
            figures_read |= {f"{config.zoom.mode}/{k}": v for k, v in zoomed.items()}
        notes.append(f"{benchmark}: {summary}")
        notes.extend(f"{benchmark}: {n}" for n in reader_notes)
        if cid is not None:
            round_id = checkpoint_of(store, cid).round_id
            with store.write() as session:
                write_metrics(session, picked[0], round_id, cid, benchmark, figures_read, whole_split=True)
        else:
            figures = {(benchmark, k): v for k, v in figures_read.items()}
    del engine, lm
    gc.collect()
    return figures
