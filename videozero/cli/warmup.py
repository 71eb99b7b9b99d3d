"""`videozero model warmup`: the supervised cold start of the solver on self-generated verifiable tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from videozero.cli.common import DbOption, console, resolve_db
from videozero.progress import StageProgress, console_bars


def warmup(
    model: Annotated[
        str | None,
        typer.Argument(
            help="hub id or directory of the learner (default: <workdir>/models/nano)", show_default=False
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="where the warmed-up checkpoint goes (default: <model>-warmup)", show_default=False
        ),
    ] = None,
    steps: Annotated[int, typer.Option("--steps", min=0, help="supervised steps")] = 40,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 8,
    lr: Annotated[float, typer.Option("--lr", help="learning rate of the LM (LoRA or full)")] = 2e-4,
    projector_lr: Annotated[
        float, typer.Option("--projector-lr", help="projector learning rate (0: frozen)")
    ] = 1e-3,
    lora_rank: Annotated[
        int, typer.Option("--lora-rank", min=0, help="LoRA rank on the LM (0: train it in full)")
    ] = 16,
    tasks: Annotated[int, typer.Option("--tasks", min=1, help="generated training tasks")] = 160,
    heldout: Annotated[
        int, typer.Option("--heldout", min=0, help="generated held-out tasks (0: no evaluation)")
    ] = 32,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    record: Annotated[
        bool, typer.Option("--record/--no-record", help="add a Checkpoint row to the store")
    ] = True,
    db: DbOption = None,
) -> None:
    """Teach the answer format and first signal on generated clips (answers known by construction)."""
    import torch

    from store.checkpoints import checkpoint_row
    from videozero.cli.model import default_model_dir
    from videozero.models.engines.transformers_engine import TransformersEngine
    from videozero.models.loader import load_model
    from videozero.solver.grpo_config import LoraSettings
    from videozero.solver.heldout import heldout_scores
    from videozero.solver.tasks import constant_baseline
    from videozero.solver.training import save_checkpoint
    from videozero.solver.warmup import warmup as run_warmup
    from videozero.solver.warmup import warmup_tasks
    from videozero.solver.warmup_config import WarmupConfig

    source = model or str(default_model_dir("nano"))
    out = out or Path(f"{source.rstrip('/')}-warmup")
    config = WarmupConfig(
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        projector_lr=projector_lr,
        lora=LoraSettings(r=lora_rank, alpha=2 * lora_rank) if lora_rank else None,
        train_tasks=tasks,
        heldout_tasks=heldout,
        seed=seed,
    )
    lm = load_model(source, device="auto")
    with console.status("generating verifiable tasks on synthetic clips"):
        train_q, held_q, _, held_tasks = warmup_tasks(config, clip_dir=out.parent / f".{out.name}-clips")
    before = after = None
    if held_q:
        with console.status("scoring the held-out tasks before the warm-up"):
            before = heldout_scores(TransformersEngine(lm, 16), held_q)
    report_step = StageProgress()
    with console_bars(console):
        report = run_warmup(
            lm, train_q, config, progress=lambda s, loss: report_step("warm-up", s, steps, f"loss {loss:.3f}")
        )
    if held_q:
        with console.status("scoring the held-out tasks after the warm-up"):
            after = heldout_scores(TransformersEngine(lm, 16), held_q)
    path = save_checkpoint(lm, out)
    checkpoint_id = None
    if record:
        from store import open_store

        checkpoint_id = checkpoint_row(open_store(resolve_db(db)), path, "warmup", base_model=source)

    table = Table(title=f"held-out tasks of {source}: before -> after the warm-up")
    for col in ("family", "format", "accuracy", "constant", "IoU", "constant IoU"):
        table.add_column(col, justify="left" if col == "family" else "right")
    if before is not None and after is not None:
        base = constant_baseline(held_tasks)
        for fam in sorted(after.families):
            b, a, c = before.families[fam], after.families[fam], base[fam]
            table.add_row(
                fam,
                f"{b['format']:.0%} -> {a['format']:.0%}",
                f"{b['accuracy']:.2f} -> {a['accuracy']:.2f}",
                f"{c.accuracy:.2f} ({c.answer})",
                f"{b['iou']:.2f} -> {a['iou']:.2f}",
                f"{c.iou:.2f}",
            )
    console.print(table)
    summary = Table(show_header=False)
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row(
        "steps", f"{report.steps} x {config.batch_size} examples, {report.seconds_per_step:.1f} s/step"
    )
    summary.add_row("loss", f"{report.first_loss:.3f} -> {report.last_loss:.3f}")
    summary.add_row("trainable parameters", f"{report.trainable / 1e6:.2f} M")
    summary.add_row("checkpoint", str(path) + (f" (id {checkpoint_id})" if checkpoint_id else ""))
    summary.add_row("threads", str(torch.get_num_threads()))
    summary.add_row("seconds", f"{report.seconds:.0f}")
    console.print(summary)
