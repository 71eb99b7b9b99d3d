"""`videozero question`: propose evidence-anchored questions for a run's round, verify them, store them."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from store import open_store
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
from videozero.progress import StageProgress, console_bars


class Writer(StrEnum):
    template = "template"
    model = "model"
    both = "both"


def _family_list(value: str | None) -> list[str] | None:
    from videozero.questioner.round_config import FAMILIES

    if not value:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise VideozeroError(f"unknown question family {unknown[0]!r}: use some of {', '.join(FAMILIES)}.")
    return names


def _solver(store, run_id: int, round_index: int, model: str | None, workdir: Path) -> tuple[int, str]:
    """(checkpoint id, path) of the verifying solver: --model, else the checkpoint the round starts from
    (as `videozero iterate` picks it), else <workdir>/models/nano."""
    from store import StoreError
    from store.checkpoints import checkpoint_row, current_solver

    if not model:
        try:
            return current_solver(store, run_id, round_index)
        except StoreError:  # the run has no solver checkpoint yet
            model = str(workdir / "models" / "nano")
            if not (Path(model) / "config.json").exists():
                raise VideozeroError(
                    f"no solver model: pass --model, or build the default learner with "
                    f"`videozero model init --out {model}`."
                ) from None
    return checkpoint_row(store, model, "base", run_id=run_id), model


def question(
    run: Annotated[str, typer.Option("--run", help="run name (created when --videos is given)")],
    round_index: Annotated[int, typer.Option("--round", min=0, help="round index")] = 0,
    videos: Annotated[
        list[Path] | None,
        typer.Option("--videos", help="videos or folders to mine and add to the run (repeatable)"),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="solver that verifies (default: the run's newest solver checkpoint)"),
    ] = None,
    writer: Annotated[
        Writer, typer.Option("--writer", help="who writes: templates, the model, or both")
    ] = Writer.template,
    questioner: Annotated[
        str | None,
        typer.Option("--questioner", help="model that writes questions (default: the solver model)"),
    ] = None,
    per_video: Annotated[
        int, typer.Option("--per-video", min=1, help="template questions per training video")
    ] = 12,
    families: Annotated[
        str | None, typer.Option("--families", help="comma-separated families (default: all six)")
    ] = None,
    level: Annotated[int, typer.Option("--level", min=0, max=3, help="difficulty level of every family")] = 0,
    n_full: Annotated[
        int, typer.Option("--n-full", min=2, help="solver rollouts per question with the video")
    ] = 8,
    n_probe: Annotated[int, typer.Option("--n-probe", min=1, help="rollouts in each probe mode")] = 4,
    max_frames: Annotated[
        int, typer.Option("--max-frames", min=1, max=512, help="frames per video the solver sees (at 2 fps)")
    ] = 32,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    db: DbOption = None,
    workdir: Annotated[
        Path | None, typer.Option(help="work directory (store, caches, models); default ./videozero_work")
    ] = None,
    chunk: Annotated[
        int, typer.Option("--chunk", min=1, help="candidates verified (and committed) together")
    ] = 8,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Propose questions of every family on the run's training videos, verify them with the solver in
    every mode, and store candidates, attempts and verdicts. Re-running a finished round adds nothing;
    an interrupted one resumes."""
    workdir = workdir or workdir_default()
    fams = _family_list(families)
    if videos and not any(p.exists() for p in videos):
        raise VideozeroError(f"none of the inputs exist ({', '.join(map(str, videos))}): check the paths.")
    from videozero.questioner.round_config import FAMILIES, QuestionerConfig
    from videozero.questioner.verify_config import VerifyConfig

    config = QuestionerConfig(
        families=fams or list(FAMILIES),
        per_video=per_video,
        templates=writer is not Writer.model,
        solver_max_frames=max_frames,
        seed=seed,
        verify=VerifyConfig(n_full=n_full, n_probe=n_probe, seed=seed),
        chunk=chunk,
    )
    fan = executor_from(executor, ray_address)
    store = open_store(resolve_db(db, workdir), create=bool(videos))
    try:
        if fan.is_ray:
            from videozero.stages.preflight import check_shared_store

            check_shared_store(store)
        summary = _run(
            store, run, round_index, videos, model, writer, questioner, config, level, workdir, fan
        )
    finally:
        store.dispose()
    console.print(summary_table(summary, run, round_index))


def _run(
    store,
    run: str,
    round_index: int,
    videos: list[Path] | None,
    model: str | None,
    writer: Writer,
    questioner: str | None,
    config,
    level: int,
    workdir: Path,
    fan=None,
):
    """Create or find the run, mine and attach --videos, load the models, run the questioner phase."""
    from store.runs import attach_videos, run_by_name, run_names
    from store.tables import Run
    from videozero.models.engines.transformers_engine import TransformersEngine
    from videozero.models.loader import load_model
    from videozero.questioner.model_writer import model_writer
    from videozero.questioner.writer import WriterConfig
    from videozero.stages.mine import mine_videos
    from videozero.stages.question import question_round
    from videozero.video.cache import VideoCache

    cache_dir = workdir / "cache"
    with store.session() as s:
        row = run_by_name(s, run)
    if row is None and not videos:
        with store.session() as s:
            names = ", ".join(run_names(s)) or "none"
        raise VideozeroError(f"run {run!r} is not in the store (runs: {names}): pass --videos to create it.")
    if row is None:
        with store.write() as s:
            s.add(Run(name=run, config={"created_by": "question"}, status="running"))
        with store.session() as s:
            row = run_by_name(s, run)
    run_id = row.id
    if videos:
        with console_bars(console):
            mined = mine_videos(
                store,
                list(videos),
                cache_dir=cache_dir,
                progress=StageProgress(),
                executor=fan,
                run_id=run_id,
            )
        ids = [r.video_id for r in mined.results if r.status != "error" and r.video_id is not None]
        for r in mined.errors:
            console.print(Text.assemble(("skipped", "red"), f" {r.path}: {r.error}"))
        if not ids:
            raise VideozeroError("no video could be mined: see the errors above.")
        attach_videos(store, run_id, ids)
    checkpoint_id, solver_path = _solver(store, run_id, round_index, model, workdir)
    # Ray workers load the verifying solver themselves: here only if the model also writes questions
    on_workers = fan is not None and fan.is_ray and writer is Writer.template
    engine = None if on_workers else TransformersEngine(load_model(solver_path, device="auto"))
    families = config.families
    write = None
    if writer in (Writer.model, Writer.both):
        q_engine = (
            engine
            if not questioner or questioner == solver_path
            else TransformersEngine(load_model(questioner))
        )
        write = model_writer(
            q_engine,
            WriterConfig(),
            config.model_spans_per_video,
            config.solver_sampling.sampling,
            VideoCache(cache_dir),
        )
    with console_bars(console):
        summary = question_round(
            store,
            run_id,
            round_index,
            engine,
            checkpoint_id,
            config,
            dict.fromkeys(families, level),
            None,
            write,
            cache_dir,
            StageProgress(),
            executor=fan,
            checkpoint_path=solver_path,
        )
    return summary


def summary_table(summary, run: str, round_index: int) -> Table:
    """Per family: candidates, accepted, rejected; then the rejection reasons and seconds per step."""
    table = Table(title=f"run {run!r} round {round_index}: questions")
    for name in ("family", "proposed", "accepted", "rejected", "pending"):
        table.add_column(name, justify="left" if name == "family" else "right")
    totals = [0, 0, 0, 0]
    for family in sorted(summary.counts):
        c = summary.counts[family]
        row = [sum(c.values()), c["accepted"], c["rejected"], c["candidate"]]
        totals = [a + b for a, b in zip(totals, row, strict=True)]
        table.add_row(family, *map(str, row))
    table.add_section()
    table.add_row("all", *map(str, totals))
    if summary.reasons:
        table.caption = "rejected: " + ", ".join(f"{r} {n}" for r, n in summary.reasons.most_common())
    if summary.seconds:
        table.caption = (
            (table.caption + "\n" if table.caption else "")
            + "seconds: "
            + ", ".join(f"{k} {v:.1f}" for k, v in summary.seconds.items())
        )
    return table
