"""`videozero mine`: decode videos, find shots and salient evidence segments, store them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

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
from videozero.video.decode import MINING_SAMPLING as DEFAULT_SAMPLING
from videozero.video.decode import SamplingConfig
from videozero.video.samples import default_clips

if TYPE_CHECKING:
    from videozero.evidence.mine import MiningSummary


def mine(
    videos: Annotated[
        list[Path] | None,
        typer.Option(
            "--videos", help="video files or folders (repeatable); default: the embedded sample clips"
        ),
    ] = None,
    fps: Annotated[float, typer.Option(help="frames sampled per second of video")] = DEFAULT_SAMPLING.fps,
    max_frames: Annotated[
        int, typer.Option(help="at most this many frames per video (spread evenly)")
    ] = DEFAULT_SAMPLING.max_frames,
    db: DbOption = None,
    workdir: Annotated[
        Path | None,
        typer.Option(
            help="work directory (store, frame cache); default $VIDEOZERO_WORKDIR or ./videozero_work"
        ),
    ] = None,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Mine evidence segments (shots, events, frame anchors) from videos into the store.

    Re-running adds nothing for videos already mined at the same --fps/--max-frames. A file that cannot
    be mined is reported in the table and stored with its error; the others are still mined. Exit status
    is 1 when no input exists at all or when not a single video could be mined (or was mined before),
    0 otherwise.
    """
    workdir = workdir or workdir_default()
    try:
        sampling = SamplingConfig(fps=fps, max_frames=max_frames, short_side=DEFAULT_SAMPLING.short_side)
    except ValueError:
        raise VideozeroError(
            f"--fps {fps:g} / --max-frames {max_frames} are out of range: use 0 < fps <= 120 and 1 <= max-frames <= 4096."
        ) from None
    inputs = list(videos) if videos else default_clips(workdir)
    if videos and not any(p.exists() for p in videos):
        names = ", ".join(str(p) for p in videos)
        raise VideozeroError(f"none of the inputs exist ({names}): check the paths.")
    fan = executor_from(executor, ray_address)
    store = open_store(resolve_db(db, workdir))
    try:
        if fan.is_ray:
            from videozero.stages.preflight import check_shared_store

            check_shared_store(store)
        from videozero.progress import StageProgress, console_bars
        from videozero.stages.mine import mine_videos

        with console_bars(console):
            summary = mine_videos(
                store, inputs, sampling, cache_dir=workdir / "cache", progress=StageProgress(), executor=fan
            )
    finally:
        store.dispose()
    console.print(summary_table(summary))
    if summary.count("mined") + summary.count("skipped") == 0:
        first = (summary.errors[0].error or "unreadable").rstrip(".") if summary.errors else "no input"
        raise VideozeroError(f"no video could be mined ({len(summary.errors)} failed; the first: {first}).")


def summary_table(summary: MiningSummary) -> Table:
    """One row per input (status, duration, shots, segments, seconds, error) and a total row."""
    table = Table(title=f"mined at {summary.sampling}", show_footer=False)
    for name, justify in (
        ("video", "left"),
        ("status", "left"),
        ("duration s", "right"),
        ("shots", "right"),
        ("segments", "right"),
        ("seconds", "right"),
        ("error", "left"),
    ):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    colour = {"mined": "green", "skipped": "cyan", "error": "red"}
    for r in summary.results:
        table.add_row(
            Path(r.path).name or r.path,
            Text(r.status, style=colour[r.status]),
            f"{r.duration_s:.1f}" if r.duration_s is not None else "",
            str(r.shots) if r.status != "error" else "",
            str(r.segments) if r.status != "error" else "",
            f"{r.seconds:.2f}",
            r.error or "",
        )
    ok = [r for r in summary.results if r.status != "error"]
    table.add_section()
    table.add_row(
        f"{len(summary.results)} inputs",
        f"{summary.count('mined')} mined, {summary.count('skipped')} skipped, {len(summary.errors)} errors",
        f"{sum(r.duration_s or 0 for r in ok):.1f}",
        str(sum(r.shots for r in ok)),
        str(sum(r.segments for r in ok)),
        f"{sum(r.seconds for r in summary.results):.2f}",
        "",
    )
    return table
