"""Does nano learn the loop's families? Accuracy and IoU per family before and after the warm-up and
after each GRPO round, beside each family's best constant answer and span.

Run: python bench/learning.py --nano DIR [--train-scenes 16] [--eval-scenes 6] [--warmup-steps N]
     [--warmup-lr LR] [--full] [--eval-every N] [--rounds 2] [--steps 4] [--prompts 4] [--group 4]
     [--temperature T] [--lr LR] [--rationale] [--recall] [--span-frames] [--skip-base] [--save DIR] [--warmed]
     [--out FILE]

The questions are the loop's own template families (grounding, ordering, arrow_of_time, what_next,
counting, semantic_grounding) at every level, built on generated scenes with answers and evidence known
by construction. Training questions come from the warm-up scene set, scored questions from the
validation scene set (other seeds: no scene is in both, and neither is a default run's held-out scene),
both at the default preset's solver sampling. The warm-up and GRPO recipes are the default preset's
unless overridden. Greedy decoding, as the method's protocol. Every accuracy is printed beside the best
constant answer of the same questions, and every checkpoint's change against the warm-up with its
paired standard error. Beside the warm-up's and each GRPO step's seconds, the utilisation of the
machine's floor (bench/floor.py: an fp32 GEMM timed in the same run; the warm-up at 4 P FLOPs per token
with LoRA, 6 P full; rollouts a forward of each prompt once plus one per sampled token; the update 4 or
6 P per token of every kept sequence, a group's prompt counted once where the model shares it (nano);
prompt lengths are the training set's mean). Prints figures; never asserts them.
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
    parser.add_argument("--train-scenes", type=int, default=16, help="generated scenes trained on")
    parser.add_argument("--eval-scenes", type=int, default=6, help="generated scenes scored on")
    parser.add_argument("--per-video", type=int, default=48, help="template questions per training scene")
    parser.add_argument("--eval-per-video", type=int, default=40, help="template questions per scored scene")
    parser.add_argument("--warmup-steps", type=int, default=None, help="default: the preset's")
    parser.add_argument("--warmup-lr", type=float, default=None, help="default: the preset's")
    parser.add_argument(
        "--full", action="store_true", help="warm up the full LM (default: the preset's LoRA)"
    )
    parser.add_argument(
        "--rationale",
        action="store_true",
        help="warm-up targets think their constructed rationale (default: the preset's, an empty think)",
    )
    parser.add_argument(
        "--recall",
        action="store_true",
        help="nano writes after each still image the time of the shown frame it most resembles "
        "(frame_recall; kept in the saved checkpoint)",
    )
    parser.add_argument(
        "--span-frames",
        action="store_true",
        help="with --recall: nano writes after each option's spans the shown frames inside them, keyed by "
        "the option's letter (span_frames; kept in the saved checkpoint)",
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        default=0,
        help="during the warm-up, also score a fixed subset of the scored questions every N steps",
    )
    parser.add_argument("--curve-questions", type=int, default=96, help="size of that subset")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--steps", type=int, default=None, help="GRPO steps per round (default: the preset's)"
    )
    parser.add_argument(
        "--prompts", type=int, default=None, help="prompts per GRPO step (default: the preset's)"
    )
    parser.add_argument("--group", type=int, default=None, help="samples per prompt (default: the preset's)")
    parser.add_argument(
        "--temperature", type=float, default=None, help="GRPO sampling temperature (default: the preset's)"
    )
    parser.add_argument("--lr", type=float, default=None, help="GRPO learning rate (default: the preset's)")
    parser.add_argument(
        "--skip-base", action="store_true", help="do not score the checkpoint before the warm-up"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", help="save the warmed-up checkpoint to this directory")
    parser.add_argument(
        "--warmed",
        action="store_true",
        help="--nano is a checkpoint an earlier run warmed up and saved (--save): no warm-up; its score "
        "is the 'after warm-up' row the GRPO rounds are compared with",
    )
    parser.add_argument("--out", help="also write the output to this file")
    args = parser.parse_args()
    if args.warmed and (args.save or args.warmup_steps or args.warmup_lr or args.full or args.eval_every):
        parser.error(
            "--warmed runs no warm-up: drop --save, --warmup-steps, --warmup-lr, --full and --eval-every"
        )

    import numpy as np
    import torch
    from rich.console import Console
    from rich.table import Table

    from bench.floor import BACKWARD_FROZEN, BACKWARD_FULL, Floor, gemm_gflops, lm_size
    from videozero.evaluation.baselines import (
        ScoredTruth,
        best_constant_answer,
        best_constant_span,
        paired_change,
    )
    from videozero.models.engines.transformers_engine import TransformersEngine
    from videozero.models.loader import load_model
    from videozero.models.prompt import build_batch
    from videozero.models.shared_prompt import shares_prompts
    from videozero.questioner.supervision import template_targets
    from videozero.run_config import load_run_config
    from videozero.solver.grpo import GRPOTrainer
    from videozero.solver.heldout import heldout_scores
    from videozero.solver.warmup import supervised_targets, warmup
    from videozero.stages.evidence import evidence_loader
    from videozero.stages.mine import mine_videos
    from videozero.stages.run import open_run_store
    from videozero.video.samples import generated_scenes

    torch.set_num_threads(2)
    gemm = gemm_gflops()
    console = Console(record=True, width=180)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="vz-bench-learning-"))
    config = load_run_config("default", workdir=str(work), run_name="bench-learning")
    store = open_run_store(config)
    cache = work / "cache"

    def mined(kind: str, count: int) -> list[int]:
        report = mine_videos(store, generated_scenes(work, kind, count), cache_dir=cache)
        return [r.video_id for r in report.results if r.video_id is not None]

    q = config.questioner
    evidence = evidence_loader(store, cache)
    train = template_targets(
        evidence, mined("warmup_scene", args.train_scenes), q, args.per_video, [0, 1, 2, 3], args.seed, cache
    )
    scored = template_targets(
        evidence,
        mined("validation_scene", args.eval_scenes),
        q,
        args.eval_per_video,
        [0, 1, 2, 3],
        args.seed + 9,
        cache,
    )
    families = sorted({x.family for x in scored})
    truths = {
        f: [
            ScoredTruth(i, x.family, x.kind, x.answer, tuple(x.evidence), x.duration)
            for i, x in enumerate(scored)
            if x.family == f
        ]
        for f in families
    }
    console.print(
        f"{len(train)} training questions on {args.train_scenes} scenes, {len(scored)} scored questions on "
        f"{args.eval_scenes} other scenes ({', '.join(f'{f} {len(truths[f])}' for f in families)}); "
        f"written and mined in {time.perf_counter() - started:.0f} s"
    )

    lm = load_model(args.nano, device="cpu")
    if args.recall:
        lm.model.config.frame_recall = True
    if args.span_frames:
        lm.model.config.span_frames = True
    rows: list[tuple[str, object, float]] = []
    size = lm_size(lm.model)
    sample = train[:: max(1, len(train) // 64)]
    prompt_tokens = sum(build_batch(lm, [x.request]).prompt_lengths[0] for x in sample) / len(sample)
    target_tokens = sum(
        len(lm.tokenizer(t)["input_ids"]) + 1 for t in supervised_targets(sample, args.rationale)
    ) / len(sample)
    console.print(
        f"floor: fp32 GEMM {gemm:.0f} GFLOP/s on 2 threads; LM body {size.body / 1e6:.1f} M + head "
        f"{size.head / 1e6:.1f} M parameters; training prompts "
        f"{prompt_tokens:.0f} tokens + targets {target_tokens:.0f} on average"
    )

    def evaluate(stage: str, seconds: float) -> None:
        t = time.perf_counter()
        scores = heldout_scores(
            TransformersEngine(lm, 16), scored, max_new_tokens=q.solver_sampling.max_new_tokens
        )
        rows.append((stage, scores, seconds))
        console.print(
            f"[bold]{stage}[/]: accuracy {scores.accuracy:.3f}, IoU {scores.iou:.3f}, format {scores.format_rate:.0%} "
            f"(trained {seconds:.0f} s, scored in {time.perf_counter() - t:.0f} s)"
        )
        said = {f: v["rationale"] for f, v in sorted(scores.families.items()) if "rationale" in v}
        if said and args.rationale:
            console.print(
                f"  think says the constructed rationale: {scores.rationale:.0%} ("
                + ", ".join(f"{f} {v:.0%}" for f, v in said.items())
                + ")"
            )

    if not args.skip_base:
        evaluate("nano", 0.0)
    wcfg = config.learner.warmup.model_copy(update={"seed": args.seed})
    if args.warmup_steps is not None:
        wcfg = wcfg.model_copy(update={"steps": args.warmup_steps})
    if args.warmup_lr is not None:
        wcfg = wcfg.model_copy(update={"lr": args.warmup_lr})
    if args.full:
        wcfg = wcfg.model_copy(update={"lora": None})
    if args.rationale:
        wcfg = wcfg.model_copy(update={"rationale": True})
    pick = np.random.default_rng(args.seed + 1)
    curve = [
        scored[i]
        for i in sorted(pick.choice(len(scored), min(args.curve_questions, len(scored)), replace=False))
    ]

    def curve_point(step: int, loss: float) -> None:
        """Score the curve subset mid-warm-up (greedy), each family beside its constant on the subset."""
        if not args.eval_every or step % args.eval_every or step >= wcfg.steps:
            return
        started_point = time.perf_counter()
        lm.model.eval()
        s = heldout_scores(TransformersEngine(lm, 16), curve, max_new_tokens=q.solver_sampling.max_new_tokens)
        lm.model.train()
        const = {
            f: best_constant_answer(
                [
                    ScoredTruth(i, x.family, x.kind, x.answer, tuple(x.evidence), x.duration)
                    for i, x in enumerate(curve)
                    if x.family == f
                ]
            )[1]
            for f in s.families
        }
        console.print(
            f"  warm-up step {step} (loss {loss:.3f}), {len(curve)} of the scored questions: accuracy {s.accuracy:.3f}; "
            + ", ".join(
                f"{f} {s.families[f]['accuracy']:.2f} (constant {const[f]:.2f})" for f in sorted(s.families)
            )
        )
        curve_seconds.append(time.perf_counter() - started_point)

    curve_seconds: list[float] = []

    if args.warmed:
        evaluate("after warm-up", 0.0)
    else:
        t = time.perf_counter()
        report = warmup(lm, train, wcfg, curve_point)
        # the curve's scoring left out
        per_step = (report.seconds - sum(curve_seconds)) / max(1, report.steps)
        backward = BACKWARD_FROZEN if wcfg.lora else BACKWARD_FULL
        b = wcfg.batch_size
        step_floor = Floor(
            size.flops(b * (prompt_tokens + target_tokens), b * target_tokens, backward),
            per_step,
            gemm,
        )
        console.print(
            f"warm-up: {report.steps} steps x {wcfg.batch_size}, loss {report.first_loss:.2f} -> {report.last_loss:.2f}, "
            f"{per_step:.1f} s/step ({step_floor}), {report.trainable:,} trainable"
        )
        evaluate("after warm-up", time.perf_counter() - t - sum(curve_seconds))
        if args.save:
            from videozero.solver.training import save_checkpoint

            save_checkpoint(lm, Path(args.save))
    updates = {"seed": args.seed}
    for key, value in (
        ("steps", args.steps),
        ("prompts_per_step", args.prompts),
        ("group_size", args.group),
        ("temperature", args.temperature),
        ("lr", args.lr),
    ):
        if value is not None:
            updates[key] = value
    gcfg = config.solver.model_copy(update=updates)
    # trains the warm-up's LoRA if it has one, else a fresh one (gcfg.lora), or the LM (gcfg.lora None)
    trainer = GRPOTrainer(lm, gcfg)
    backward = BACKWARD_FROZEN if hasattr(lm.model, "peft_config") else BACKWARD_FULL
    # the policy pass runs each question's prompt once for its group where the model shares prompts
    prompt_rows = 1 if gcfg.share_prompts and shares_prompts(lm) else gcfg.group_size
    for r in range(1, args.rounds + 1):
        t = time.perf_counter()
        out = trainer.train(train)
        for s in out.steps:
            roll = Floor(
                size.flops(s.groups * prompt_tokens + s.completion_tokens, s.groups + s.completion_tokens),
                s.seconds_rollout,
                gemm,
            )
            kept = s.groups_kept / max(1, s.groups)
            upd = Floor(
                kept
                * size.flops(
                    s.groups * prompt_rows * prompt_tokens + s.completion_tokens,
                    s.completion_tokens,
                    backward,
                ),
                s.seconds_update,
                gemm,
            )
            console.print(
                f"  step {s.step}: reward {s.reward:.3f} acc {s.accuracy:.2f} IoU {s.iou:.2f} format {s.format_rate:.0%} "
                f"groups kept {s.groups_kept}/{s.groups} rollout {s.seconds_rollout:.0f} s (util. {roll.utilisation:.2f}) "
                f"update {s.seconds_update:.0f} s "
                + (f"(util. {upd.utilisation:.2f})" if kept else "(no group kept: anchor only)")
            )
        evaluate(f"after GRPO round {r}", time.perf_counter() - t)

    table = Table(title=f"{len(scored)} scored questions (greedy): accuracy / mean IoU per family")
    table.add_column("stage")
    for fam in families:
        table.add_column(f"{fam} ({len(truths[fam])})", justify="right")
    table.add_column("all", justify="right")
    table.add_column("accuracy vs warm-up", justify="right")
    consts = {f: (best_constant_answer(truths[f]), best_constant_span(truths[f])) for f in families}
    const_all = sum(consts[f][0][1] * len(truths[f]) for f in families) / max(1, len(scored))
    table.add_row(
        "best constant",
        *[f"{consts[f][0][1]:.2f} / {consts[f][1][1]:.2f} ({consts[f][0][0]})" for f in families],
        f"{const_all:.2f}",
        "",
        style="dim",
    )
    warm = next(s for stage, s, _ in rows if stage == "after warm-up")
    for stage, s, _ in rows:
        change = paired_change(list(zip(s.per_question_accuracy, warm.per_question_accuracy, strict=True)))
        table.add_row(
            stage,
            *[f"{s.families[f]['accuracy']:.2f} / {s.families[f]['iou']:.2f}" for f in families],
            f"{s.accuracy:.2f} / {s.iou:.2f}",
            "" if s is warm else str(change),
        )
    console.print(table)
    beats = [f for f in families if warm.families[f]["accuracy"] >= consts[f][0][1] + 0.10]
    console.print(
        f"after the warm-up, {len(beats)} of {len(families)} families beat their best constant answer by 10 points"
        + (f" ({', '.join(beats)})" if beats else "")
    )
    console.print(
        "recipe: "
        + (
            f"warm-up: none, {args.nano} was warmed up by an earlier run"
            if args.warmed
            else f"warm-up {wcfg.model_dump(exclude={'lora', 'matching'})} lora r={wcfg.lora.r if wcfg.lora else 0} "
            f"matching steps {wcfg.matching.steps}"
        )
        + f"; GRPO "
        f"{gcfg.model_dump(include={'steps', 'lr', 'temperature', 'prompts_per_step', 'group_size', 'kl_coef', 'token_selective'})}"
    )
    console.print(
        f"total {time.perf_counter() - started:.0f} s, load average {os.getloadavg()[0]:.1f} on 2 cores"
    )
    if args.out:
        Path(args.out).write_text(console.export_text())


if __name__ == "__main__":
    main()
