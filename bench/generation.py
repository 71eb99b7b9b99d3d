"""Throughput of the transformers engine by batch size, for tiny-qwen and nano; nano's training step cost.

Prints rollouts per second and generated tokens per second for P prompts x N samples (default 64 x 8)
at batch sizes 1, 8 and 32, each also as a ratio to batch 1, all measured in one run; for nano, the
N samples of a prompt with its prefill shared against one prefill per sample; then nano's seconds per
forward + backward of a batch of 8 (projector only, full LM, LoRA r=8 via peft). Beside each, the
utilisation of the machine's floor (bench/floor.py, an fp32 GEMM timed at the start of the run):
generation against a forward of each prompt once plus one per generated token (target >= 0.3), the
training pass against 6 P FLOPs per token (full) or 4 P (projector, LoRA).
Figures only: nothing here asserts a timing.

    python bench/generation.py [--prompts 64] [--nano-prompts P] [--samples 8] [--max-new-tokens 16] [--nano DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from videozero.quiet import quiet_libraries  # noqa: E402

quiet_libraries()  # figures, not library chatter (before transformers is imported)

from bench.floor import BACKWARD_FROZEN, BACKWARD_FULL, Floor, gemm_gflops, lm_size  # noqa: E402
from videozero.answer_format import format_instruction, render_answer  # noqa: E402
from videozero.models.engines.base import SamplingParams  # noqa: E402
from videozero.models.engines.transformers_engine import TransformersEngine  # noqa: E402
from videozero.models.loader import LoadedModel, load_model  # noqa: E402
from videozero.models.prompt import Request, VideoInput, build_batch, token_logprobs  # noqa: E402

GEMM = [float("nan")]  # this run's GEMM rate, measured once in main()


def requests(count: int, frames: int = 8, size: int = 112) -> list[Request]:
    """`count` prompts over clips of coloured frames 0.5 s apart (the warm-up task's shape)."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        clip = np.zeros((frames, size, size, 3), dtype=np.uint8)
        clip[:] = rng.integers(0, 256, 3, dtype=np.uint8)
        on = rng.integers(0, frames - 2)
        clip[on : on + 2, size // 4 : size // 2, size // 4 : size // 2] = (230, 30, 30)
        question = f"When is the red square visible? ({i}) " + format_instruction("text")
        out.append(Request(question, VideoInput(clip, np.arange(frames) * 0.5)))
    return out


def throughput(
    lm: LoadedModel, reqs: list[Request], samples: int, max_new: int, batch: int
) -> tuple[float, float, float]:
    """(rollouts per second, generated tokens per second, utilisation of the floor) at one batch size."""
    engine = TransformersEngine(lm, batch_size=batch, share_prefill=False, max_prompts=batch)
    params = SamplingParams(n=samples, temperature=1.0, max_new_tokens=max_new, seed=0)
    engine.generate(reqs[:1], SamplingParams(n=1, max_new_tokens=2))  # warm-up
    start = time.perf_counter()
    out = engine.generate(reqs, params)
    seconds = time.perf_counter() - start
    tokens = sum(len(s.token_ids) for group in out for s in group)
    prompt_tokens = sum(build_batch(lm, [r]).prompt_lengths[0] for r in reqs)
    floor = Floor(lm_size(lm.model).flops(prompt_tokens + tokens, len(reqs) + tokens), seconds, GEMM[0])
    return len(reqs) * samples / seconds, tokens / seconds, floor.utilisation


def bench_model(name: str, lm: LoadedModel, args: argparse.Namespace, prompts: int) -> None:
    reqs = requests(prompts)
    rows = {b: throughput(lm, reqs, args.samples, args.max_new_tokens, b) for b in (1, 8, 32)}
    base_r, base_t, _ = rows[1]
    print(
        f"\n{name}: {prompts} prompts x {args.samples} samples, up to {args.max_new_tokens} new tokens, "
        f"8 frames of 112 px, {torch.get_num_threads()} threads"
    )
    print(f"{'batch':>5} {'rollouts/s':>11} {'x batch 1':>9} {'tokens/s':>9} {'x batch 1':>9} {'util.':>6}")
    for b, (r, t, u) in rows.items():
        print(f"{b:>5} {r:>11.2f} {r / base_r:>9.2f} {t:>9.1f} {t / base_t:>9.2f} {u:>6.2f}")


def prefill_sharing(lm: LoadedModel, reqs: list[Request], samples: int, max_new: int) -> None:
    """Seconds for N samples of each prompt with the prompt's prefill shared vs one prefill per sample."""
    params = SamplingParams(n=samples, temperature=1.0, max_new_tokens=max_new, seed=0)
    seconds = {}
    for share in (False, True):
        engine = TransformersEngine(lm, batch_size=16, share_prefill=share)
        engine.generate(reqs[:1], SamplingParams(n=2, max_new_tokens=2))  # warm-up
        start = time.perf_counter()
        engine.generate(reqs, params)
        seconds[share] = time.perf_counter() - start
    prompt_tokens = build_batch(lm, reqs[:1]).input_ids.shape[1]
    print(
        f"\nnano, {len(reqs)} prompts ({prompt_tokens} prompt tokens) x {samples} samples, batch 16: "
        f"one prefill per sample {seconds[False]:.1f} s, shared prefill {seconds[True]:.1f} s "
        f"({seconds[False] / seconds[True]:.2f}x)"
    )


def step_seconds(lm: LoadedModel, mode: str, repeats: int = 3) -> tuple[float, Floor]:
    """Median seconds of one forward + backward of a batch of 8 supervised (prompt, answer) pairs, with
    the floor of its FLOPs."""
    size = lm_size(lm.model)
    model = lm.model
    model.requires_grad_(mode == "full")
    model.projector.requires_grad_(True)
    if mode == "lora":
        from peft import LoraConfig, get_peft_model

        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        model = get_peft_model(
            model, LoraConfig(r=8, lora_alpha=16, target_modules=targets, modules_to_save=["projector"])
        )
    model.train()
    reqs = requests(8)
    batch = build_batch(lm, reqs, [render_answer([(1.0, 2.0)], "1.0 to 2.0 seconds")] * 8)
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        logp = token_logprobs(model, batch)
        loss = -(logp.sum() / batch.completion_mask.sum())
        loss.backward()
        model.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - start)
    if mode == "lora":
        model.unload()
    model.eval()
    seconds = statistics.median(times)
    completion = int(batch.completion_mask.sum())
    flops = size.flops(
        int(batch.inputs["attention_mask"].sum()),
        completion,
        BACKWARD_FULL if mode == "full" else BACKWARD_FROZEN,
    )
    return seconds, Floor(flops, seconds, GEMM[0])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument(
        "--nano-prompts", type=int, default=None, help="prompts for nano (default: --prompts)"
    )
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument(
        "--nano",
        type=Path,
        default=None,
        help="a built nano (default: <workdir>/models/nano, else one is assembled without alignment)",
    )
    parser.add_argument("--skip", choices=["tiny-qwen", "nano"], action="append", default=[])
    args = parser.parse_args()
    GEMM[0] = gemm_gflops()
    print(f"floor: fp32 GEMM {GEMM[0]:.0f} GFLOP/s on {torch.get_num_threads()} threads")

    with tempfile.TemporaryDirectory() as tmp:
        if "tiny-qwen" not in args.skip:
            from videozero.models.tiny_qwen import build_tiny_qwen

            bench_model(
                "tiny-qwen (Qwen3-VL, hidden 64)",
                load_model(build_tiny_qwen(Path(tmp) / "tq")),
                args,
                args.prompts,
            )
        if "nano" not in args.skip:
            workdir = Path(os.environ.get("VIDEOZERO_WORKDIR", "videozero_work"))
            nano = args.nano or workdir / "models" / "nano"
            if not (nano / "config.json").is_file():
                from videozero.models.nano.build import build_nano

                nano, _ = build_nano(Path(tmp) / "nano", align_steps=0, evaluate=False)
            lm = load_model(nano, device="cpu")
            bench_model(f"nano ({nano})", lm, args, args.nano_prompts or args.prompts)
            prefill_sharing(
                lm, requests(args.nano_prompts or args.prompts), args.samples, args.max_new_tokens
            )
            print(
                f"\nnano forward+backward, batch 8 (8 frames, {torch.get_num_threads()} threads), median of 3:"
            )
            for mode in ("projector", "full", "lora"):
                seconds, floor = step_seconds(lm, mode)
                print(f"  {mode:>9}: {seconds:.2f} s ({floor})")


if __name__ == "__main__":
    main()
