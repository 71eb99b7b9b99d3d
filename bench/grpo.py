"""GRPO step cost on CPU: the update against a bare forward+backward of the same batch, rollouts, peak memory.

Run: python bench/grpo.py [--nano DIR] [--prompts 8] [--group 8] [--steps 2]
Each model runs in its own process so its peak memory is its own. Prints figures; never asserts them.
Efficiency ratio = bare forward+backward time / GRPO update time on the same (prompt, completion) batch
and micro-batches (target >= 0.6: the loss maths, advantages and bookkeeping cost little). The bare
pass runs every sequence whole; nano is measured twice, with its rollouts' shared prompts run once
(`GRPOConfig.share_prompts`, in generation and in the update: ratios above 1) and with that off.
Beside each time, the utilisation of the machine's floor (bench/floor.py, an fp32 GEMM timed in the same
process): rollouts against a forward of each prompt once plus one per generated token (target >= 0.3); the
update against every sequence run whole, forward + backward (4 P per token with LoRA, 6 P full; target
>= 0.5).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from videozero.quiet import quiet_libraries  # noqa: E402

quiet_libraries()  # figures, not library chatter (before transformers is imported)


def measure(
    model_dir: str,
    prompts: int,
    group: int,
    steps: int,
    frames: int,
    size: int,
    share: bool,
    micro_batch: int | None = None,
) -> dict:
    import torch

    from bench.floor import BACKWARD_FROZEN, BACKWARD_FULL, Floor, gemm_gflops, lm_size
    from videozero.models.loader import load_model
    from videozero.models.prompt import build_batch, token_logprobs
    from videozero.models.shared_prompt import shares_prompts
    from videozero.solver.grpo import GRPOTrainer, questions_from_tasks
    from videozero.solver.grpo_config import GRPOConfig
    from videozero.solver.tasks import TaskClips, make_tasks

    torch.set_num_threads(2)
    gemm = gemm_gflops()
    lm = load_model(model_dir, device="cpu")
    with tempfile.TemporaryDirectory() as clips:
        questions = questions_from_tasks(
            make_tasks(prompts, seed=7, clip_dir=clips, clips=TaskClips(frames, size))
        )
    config = GRPOConfig(
        prompts_per_step=prompts,
        group_size=group,
        skip_zero_variance=False,  # every rollout goes into the update: a fixed batch to compare
        format_floor=0.0,
        kl_coef=0.0,
        temperature=1.2,
        share_prompts=share,
        **({"micro_batch_size": micro_batch} if micro_batch else {}),
    )
    trainer = GRPOTrainer(lm, config)
    trainer.engine.share_prefill = share
    trainer.step(questions)  # warm caches (frame features, allocator)
    size = lm_size(lm.model)
    prompt_tokens = sum(build_batch(lm, [q.request]).prompt_lengths[0] for q in questions)
    rollout_s, update_s, bare_s, tokens, sequence_tokens = [], [], [], [], []
    for _ in range(steps):
        t0 = time.perf_counter()
        results = trainer.rollout(questions)
        t1 = time.perf_counter()
        trainer.update(trainer.experience(results))
        t2 = time.perf_counter()
        requests, completions = trainer.last_batch
        mb = config.micro_batch_size
        lm.model.train()
        for start in range(0, len(requests), mb):
            batch = build_batch(lm, requests[start : start + mb], completions[start : start + mb])
            logp = token_logprobs(lm.model, batch)
            logp.sum().backward()
        lm.model.zero_grad(set_to_none=True)
        lm.model.eval()
        t3 = time.perf_counter()
        rollout_s.append(t1 - t0)
        update_s.append(t2 - t1)
        bare_s.append(t3 - t2)
        tokens.append(sum(len(c) for c in completions))
        sequence_tokens.append(prompt_tokens * group + tokens[-1])
    n = len(update_s)
    trainable = sum(p.numel() for p in trainer.lm.model.parameters() if p.requires_grad)
    backward = BACKWARD_FULL if trainable > size.body / 2 else BACKWARD_FROZEN
    generated = sum(tokens) / n
    rollout = Floor(size.flops(prompt_tokens + generated, prompts + generated), sum(rollout_s) / n, gemm)
    update = Floor(size.flops(sum(sequence_tokens) / n, generated, backward), sum(update_s) / n, gemm)
    return {
        "model": Path(model_dir).name,
        "micro_batch": config.micro_batch_size,
        "family": lm.family,
        "shared": share and shares_prompts(lm),
        "sequences": prompts * group,
        "completion_tokens": sum(tokens) / n,
        "rollout_s": sum(rollout_s) / n,
        "update_s": sum(update_s) / n,
        "bare_fwd_bwd_s": sum(bare_s) / n,
        "efficiency": sum(bare_s) / sum(update_s),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "trainable_m": trainable / 1e6,
        "gemm_gflops": gemm,
        "rollout_util": rollout.utilisation,
        "update_util": update.utilisation,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nano", help="a nano checkpoint directory (default: build one, about a minute)")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument(
        "--micro-batch", type=int, default=None, help="sequences per forward+backward (default: GRPOConfig's)"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        frames, size = (8, 112)
        print(
            json.dumps(
                measure(
                    args.one,
                    args.prompts,
                    args.group,
                    args.steps,
                    frames,
                    size,
                    not args.plain,
                    args.micro_batch,
                )
            )
        )
        return

    from rich.console import Console
    from rich.table import Table

    work = Path(tempfile.mkdtemp(prefix="vz-bench-grpo-"))
    from videozero.models.tiny_qwen import build_tiny_qwen

    runs = [(str(build_tiny_qwen(work / "tiny-qwen")), False)]
    nano = args.nano
    if not nano:
        from videozero.models.nano.build import build_nano

        nano = str(build_nano(work / "nano", align_steps=0, evaluate=False, generated=8, per_clip=4)[0])
    runs += [(nano, True), (nano, False)]
    rows = []
    for d, plain in runs:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            d,
            "--prompts",
            str(args.prompts),
            "--group",
            str(args.group),
            "--steps",
            str(args.steps),
            *(["--plain"] if plain else []),
            *(["--micro-batch", str(args.micro_batch)] if args.micro_batch else []),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    table = Table(
        title=f"GRPO step on CPU ({args.prompts} prompts x {args.group} samples, 8 frames at 112 px, 2 threads, "
        f"micro-batch {rows[0]['micro_batch']})"
    )
    for col in (
        "model",
        "prompts shared",
        "trainable",
        "completion tokens",
        "rollout s",
        "update s",
        "bare fwd+bwd s",
        "efficiency",
        "rollout util.",
        "update util.",
        "step s",
        "peak RSS",
    ):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        table.add_row(
            f"{r['model']} ({r['family']})",
            "yes" if r["shared"] else "no",
            f"{r['trainable_m']:.2f} M",
            f"{r['completion_tokens']:.0f}",
            f"{r['rollout_s']:.2f}",
            f"{r['update_s']:.2f}",
            f"{r['bare_fwd_bwd_s']:.2f}",
            f"{r['efficiency']:.2f}",
            f"{r['rollout_util']:.2f}",
            f"{r['update_util']:.2f}",
            f"{r['rollout_s'] + r['update_s']:.2f}",
            f"{r['peak_rss_gb']:.2f} GB",
        )
    Console(width=180).print(table)
    print(
        "floor: fp32 GEMM "
        + ", ".join(f"{r['model']} process {r['gemm_gflops']:.0f} GFLOP/s" for r in rows)
        + " on 2 threads; utilisation = model FLOPs / (seconds x GEMM rate)"
    )
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (2 cores; other jobs share them)")


if __name__ == "__main__":
    main()
