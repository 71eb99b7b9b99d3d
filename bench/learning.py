"""Does nano learn? Held-out accuracy and IoU before and after the warm-up and after each GRPO round.

Run: python bench/learning.py --nano DIR [--rounds 2] [--steps 4] [--prompts 8] [--group 8] [--out FILE]
Generated clips (8 frames, 0.5 s apart, 112 px), tasks with answers known by construction; held-out
tasks come from disjoint seeds. Greedy decoding for the held-out scores, as the method's protocol. The
best constant answer and the best constant span of each family are printed beside the scores: a family
whose constant answer scores well measures nothing. Prints figures; never asserts them.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from videozero.quiet import quiet_libraries  # noqa: E402

quiet_libraries()  # figures, not library chatter (before transformers is imported)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nano", required=True, help="nano checkpoint directory (`videozero model init`)")
    parser.add_argument("--train-tasks", type=int, default=96)
    parser.add_argument("--heldout-tasks", type=int, default=32)
    parser.add_argument("--warmup-steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4, help="GRPO steps per round")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--lr", type=float, default=None, help="LM learning rate (default: GRPOConfig's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the output to this file")
    args = parser.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    from videozero.models.engines.transformers_engine import TransformersEngine
    from videozero.models.loader import load_model
    from videozero.solver.grpo import GRPOTrainer, questions_from_tasks
    from videozero.solver.grpo_config import GRPOConfig
    from videozero.solver.heldout import heldout_scores
    from videozero.solver.tasks import FAMILIES, constant_baseline, make_tasks
    from videozero.solver.warmup import WarmupConfig, warmup

    torch.set_num_threads(2)
    console = Console(record=True, width=140)
    clips = Path(tempfile.mkdtemp(prefix="vz-bench-learning-"))
    train_tasks = make_tasks(args.train_tasks, seed=args.seed * 2 + 11, clip_dir=clips)
    held_tasks = make_tasks(args.heldout_tasks, seed=args.seed * 2 + 12, clip_dir=clips)
    train, held = questions_from_tasks(train_tasks), questions_from_tasks(held_tasks)
    base = constant_baseline(held_tasks)
    lm = load_model(args.nano, device="cpu")
    rows: list[tuple[str, object, float]] = []

    def evaluate(stage: str, seconds: float) -> None:
        scores = heldout_scores(TransformersEngine(lm, 16), held)
        rows.append((stage, scores, seconds))
        console.print(
            f"[bold]{stage}[/]: reward {scores.reward:.3f} (se {scores.stderr:.3f}), accuracy {scores.accuracy:.2f}, "
            f"IoU {scores.iou:.2f}, format {scores.format_rate:.0%}, {seconds:.0f} s"
        )

    started = time.perf_counter()
    evaluate("nano", 0.0)
    wcfg = WarmupConfig(steps=args.warmup_steps, seed=args.seed)
    t = time.perf_counter()
    report = warmup(lm, train, wcfg)
    console.print(
        f"warm-up: {report.steps} steps x {wcfg.batch_size}, loss {report.first_loss:.2f} -> {report.last_loss:.2f}, "
        f"{report.seconds_per_step:.1f} s/step"
    )
    evaluate("after warm-up", time.perf_counter() - t)
    overrides = {"lr": args.lr} if args.lr else {}
    gcfg = GRPOConfig(
        steps=args.steps,
        prompts_per_step=args.prompts,
        group_size=args.group,
        seed=args.seed,
        lora=None,
        **overrides,
    )
    trainer = GRPOTrainer(lm, gcfg)  # the warm-up's LoRA adapter is already on the model: trained on
    for r in range(1, args.rounds + 1):
        t = time.perf_counter()
        out = trainer.train(train)
        for s in out.steps:
            console.print(
                f"  step {s.step}: reward {s.reward:.3f} acc {s.accuracy:.2f} IoU {s.iou:.2f} format {s.format_rate:.0%} "
                f"groups kept {s.groups_kept}/{s.groups} anchored {s.anchored} "
                f"rollout {s.seconds_rollout:.0f} s update {s.seconds_update:.0f} s"
            )
        evaluate(f"after GRPO round {r}", time.perf_counter() - t)

    table = Table(title=f"held-out ({len(held)} tasks, greedy): accuracy / mean IoU per family")
    table.add_column("stage")
    for fam in FAMILIES:
        table.add_column(fam, justify="right")
    table.add_column("mean reward", justify="right")
    table.add_column("format", justify="right")
    table.add_column("seconds", justify="right")
    table.add_row(
        "best constant",
        *[f"{base[f].accuracy:.2f} / {base[f].iou:.2f}" for f in FAMILIES],
        "",
        "",
        "",
        style="dim",
    )
    for stage, s, seconds in rows:
        table.add_row(
            stage,
            *[f"{s.families[f]['accuracy']:.2f} / {s.families[f]['iou']:.2f}" for f in FAMILIES],
            f"{s.reward:.3f} ± {s.stderr:.3f}",
            f"{s.format_rate:.0%}",
            f"{seconds:.0f}",
        )
    console.print(table)
    console.print(
        f"recipe: warm-up {wcfg.model_dump(exclude={'lora'})} lora r={wcfg.lora.r if wcfg.lora else 0}; "
        f"GRPO {gcfg.model_dump(include={'lr', 'projector_lr', 'temperature', 'prompts_per_step', 'group_size', 'kl_coef', 'format_floor', 'token_selective', 'skip_zero_variance'})}"
    )
    console.print(
        f"total {time.perf_counter() - started:.0f} s, load average {os.getloadavg()[0]:.1f} on 2 cores"
    )
    if args.out:
        Path(args.out).write_text(console.export_text())


if __name__ == "__main__":
    main()
