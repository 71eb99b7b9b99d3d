"""`videozero model ...`: build the local checkpoints (nano, tiny-qwen) in Hugging Face format."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from videozero.cli.common import console, workdir_default
from videozero.progress import StageProgress, console_bars

app = typer.Typer(help="Build and inspect the local video LMs.", no_args_is_help=True)


class Kind(StrEnum):
    nano = "nano"
    tiny_qwen = "tiny-qwen"


class Family(StrEnum):
    qwen3_vl = "qwen3_vl"
    qwen2_5_vl = "qwen2_5_vl"


def default_model_dir(kind: str, workdir: Path | None = None) -> Path:
    """Where `model init` puts a checkpoint of `kind` unless told otherwise: <workdir>/models/<kind>."""
    return (workdir or workdir_default()) / "models" / kind


@app.command("init")
def init(
    kind: Annotated[
        Kind, typer.Option("--kind", help="nano: the default learner; tiny-qwen: plumbing checks")
    ] = Kind.nano,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="output directory (default <workdir>/models/<kind>; nano-words<k>, nano-recall or "
            "nano-words<k>-recall with those settings: where `videozero iterate` looks)",
            show_default=False,
        ),
    ] = None,
    family: Annotated[Family, typer.Option("--family", help="architecture of tiny-qwen")] = Family.qwen3_vl,
    align_steps: Annotated[
        int, typer.Option("--align-steps", min=0, help="nano projector alignment steps")
    ] = 80,
    visual_words: Annotated[
        int,
        typer.Option(
            "--visual-words",
            min=0,
            max=8,
            help="nano: visual words (the frame encoder's top ImageNet classes) leading each frame's tokens",
        ),
    ] = 0,
    frame_recall: Annotated[
        bool,
        typer.Option(
            "--frame-recall",
            help="nano: write after each still image the time of the shown frame it most resembles",
        ),
    ] = False,
    span_frames: Annotated[
        bool,
        typer.Option(
            "--span-frames",
            help="nano: write after each option's spans the shown frames inside them, keyed by its letter",
        ),
    ] = False,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Build a local checkpoint (nothing is downloaded) and save it in Hugging Face format."""
    import torch

    if out is None and kind is Kind.nano:
        from videozero.models.nano.build import build_name

        out = default_model_dir(build_name(visual_words, frame_recall, span_frames))
    out = out or default_model_dir(kind.value)
    started = time.perf_counter()
    table = Table(title=f"{kind.value} checkpoint", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    if kind is Kind.tiny_qwen:
        from videozero.models.tiny_qwen import build_tiny_qwen

        path = build_tiny_qwen(out, family=family.value, seed=seed)
        table.add_row("architecture", family.value)
    else:
        from videozero.models.nano.build import build_nano

        report_step = StageProgress()
        with console_bars(console):
            path, report = build_nano(
                out,
                align_steps=align_steps,
                visual_words=visual_words,
                frame_recall=frame_recall,
                span_frames=span_frames,
                seed=seed,
                progress=lambda step, loss: report_step(
                    "aligning projector", step, align_steps, f"loss {loss:.3f}"
                ),
            )
        table.add_row(
            "alignment",
            f"{report.steps} steps on {report.train_frames} frames, {report.labels} pseudo-labels",
        )
        table.add_row(
            "held-out frames named exactly", f"{report.exact_before:.0%} -> {report.exact_after:.0%}"
        )
        table.add_row(
            "held-out label ranked first of 8", f"{report.ranked_before:.0%} -> {report.ranked_after:.0%}"
        )
    from videozero.models.loader import load_model

    lm = load_model(path, device="cpu")
    params = sum(p.numel() for p in lm.model.parameters())
    trainable = (
        sum(p.numel() for n, p in lm.model.named_parameters() if "projector" in n)
        if kind is Kind.nano
        else params
    )
    table.add_row("directory", str(path))
    table.add_row(
        "parameters",
        f"{params / 1e6:.1f} M" + (f" ({trainable / 1e6:.2f} M projector)" if kind is Kind.nano else ""),
    )
    table.add_row("threads", str(torch.get_num_threads()))
    table.add_row("seconds", f"{time.perf_counter() - started:.0f}")
    console.print(table)


@app.command("info")
def info(
    model: Annotated[str, typer.Argument(help="hub id or local directory of a video LM")],
) -> None:
    """Show what the loader makes of a model: family, size, vision layout, vocabulary."""
    from videozero.models.source import check_model_source, offline

    check_model_source(model, offline())  # a bad path fails before torch and transformers are imported
    from videozero.models.loader import load_model

    lm = load_model(model, device="cpu")
    table = Table(title=model, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("family", lm.family)
    table.add_row("class", type(lm.model).__name__)
    table.add_row("parameters", f"{sum(p.numel() for p in lm.model.parameters()) / 1e6:.1f} M")
    table.add_row("dtype", str(lm.dtype).removeprefix("torch."))
    table.add_row("vocabulary", str(len(lm.tokenizer)))
    if lm.family == "nano":
        cfg = lm.model.config
        words = f"{cfg.visual_words} visual words + " if cfg.visual_words else ""
        recall = ", each still image followed by its recalled frame's time" if cfg.frame_recall else ""
        if cfg.span_frames:
            recall += ", options keyed by the shown frames inside their spans"
        table.add_row(
            "frames",
            f"{cfg.frame_size} px, {words}{cfg.frame_grid}x{cfg.frame_grid} tokens each{recall}",
        )
    else:
        v = lm.vision
        table.add_row(
            "patches",
            f"{v.patch_size} px, {v.temporal_patch_size} frames, merge {v.merge_size}x{v.merge_size}",
        )
    console.print(table)
