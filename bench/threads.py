"""Threads and processes on this machine: one process of T threads against T processes of one thread.

Run: python bench/threads.py --nano DIR [--threads 2] [--prompts 4] [--micro-batches 4] [--out FILE]

The same total work runs three ways, and the wall time from a common start signal (models loaded and
warmed up before it) to the last worker's end is compared:
- one process with one thread doing half of it (a core's own rate; x2 is perfect scaling),
- one process with T threads doing all of it (how the loop runs today),
- T processes of one thread each, doing 1/T of it at the same time (how a data-parallel loop would).
Workloads: an fp32 GEMM (the floor the other benchmarks divide by), nano generation (P prompts x 8
samples with shared prefill, up to 24 new tokens, the rollout shape) and nano full-LM forward + backward
of micro-batches of 2 supervised sequences (the warm-up's shape). Each row prints the throughput, its
ratio to the one-process T-thread run, and the resident memory the configuration holds in all (T
processes hold T copies of the model). Prints figures; never asserts them.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

WORKLOADS = ("gemm", "generate", "train")
UNITS = {"gemm": "GFLOP/s", "generate": "rollouts/s", "train": "sequences/s"}


def rss_gb() -> float:
    """Peak resident memory of this process (GB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def worker(kind: str, threads: int, items: int, nano: str | None) -> None:
    """Load, warm up, print `ready`, wait for a line on stdin, do `items` units of `kind`, print JSON."""
    import torch

    torch.set_num_threads(threads)
    if kind == "gemm":
        a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
        a @ b

        def run() -> float:
            for _ in range(items):
                a @ b
            return items * 2 * 1024**3 / 1e9

    else:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from videozero.quiet import quiet_libraries

        quiet_libraries()
        from bench.generation import requests
        from videozero.answer_format import render_answer
        from videozero.models.engines.base import SamplingParams
        from videozero.models.engines.transformers_engine import TransformersEngine
        from videozero.models.loader import load_model
        from videozero.models.prompt import build_batch, token_logprobs

        lm = load_model(nano, device="cpu")
        reqs = requests(2 * (items + 1))
        if kind == "generate":
            engine = TransformersEngine(lm)
            params = SamplingParams(n=8, temperature=1.0, max_new_tokens=24, seed=0)
            engine.generate(reqs[-1:], SamplingParams(n=2, max_new_tokens=2))

            def run() -> float:
                return float(sum(len(g) for g in engine.generate(reqs[:items], params)))

        else:
            lm.model.requires_grad_(True)
            lm.model.train()
            target = render_answer([(1.0, 2.0)], "1.0 to 2.0 seconds")
            batches = [build_batch(lm, reqs[2 * i : 2 * i + 2], [target] * 2) for i in range(items + 1)]

            def step(batch) -> None:
                logp = token_logprobs(lm.model, batch)
                (-(logp.sum() / batch.completion_mask.sum())).backward()
                lm.model.zero_grad(set_to_none=True)

            step(batches[-1])

            def run() -> float:
                for batch in batches[:items]:
                    step(batch)
                return float(2 * items)

    print("ready", flush=True)
    sys.stdin.readline()
    units = run()
    print(json.dumps({"units": units, "rss_gb": rss_gb()}), flush=True)


def configuration(kind: str, processes: int, threads: int, items: int, nano: str | None) -> dict:
    """Start `processes` workers of `threads` threads with `items` each, release them together; wall
    seconds from the release to the last result, total units and summed peak memory."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--worker", kind, "--threads", str(threads), "--items", str(items)]
    cmd += ["--nano", nano] if nano else []
    procs = [
        subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(processes)
    ]
    for p in procs:
        line = p.stdout.readline().strip()
        if line != "ready":
            raise SystemExit(f"a {kind} worker did not start (printed {line!r}); run it alone to see why.")
    start = time.perf_counter()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [json.loads(p.stdout.readline()) for p in procs]
    seconds = time.perf_counter() - start
    for p in procs:
        p.wait()
    return {
        "seconds": seconds,
        "units": sum(r["units"] for r in results),
        "rss_gb": sum(r["rss_gb"] for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nano", help="a nano checkpoint (videozero model init); without it, the GEMM only")
    parser.add_argument("--threads", type=int, default=2, help="T: threads of the one process, processes")
    parser.add_argument("--prompts", type=int, default=4, help="generation prompts in all (x 8 samples)")
    parser.add_argument("--micro-batches", type=int, default=4, help="training micro-batches of 2 in all")
    parser.add_argument("--gemms", type=int, default=200, help="1024^3 GEMMs in all")
    parser.add_argument("--out", help="also write the output to this file")
    parser.add_argument("--worker", choices=WORKLOADS, help=argparse.SUPPRESS)
    parser.add_argument("--items", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.threads, args.items, args.nano)
        return

    from rich.console import Console
    from rich.table import Table

    t = args.threads
    totals = {"gemm": args.gemms, "generate": args.prompts, "train": args.micro_batches}
    kinds = [k for k in WORKLOADS if k == "gemm" or args.nano]
    console = Console(record=True, width=140)
    table = Table(
        title=f"the same work as 1 process x 1 thread (half), 1 x {t} threads, {t} processes x 1 thread"
    )
    for col in (
        "workload",
        "configuration",
        "work",
        "seconds",
        "throughput",
        f"x 1 process x {t}",
        "peak RSS",
    ):
        table.add_column(col, justify="left" if col in ("workload", "configuration") else "right")
    for kind in kinds:
        total = totals[kind]
        if total % t:
            raise SystemExit(f"--{kind} work ({total}) must divide by --threads {t}: choose a multiple.")
        runs = [
            ("1 x 1 thread", configuration(kind, 1, 1, total // t, args.nano)),
            (f"1 x {t} threads", configuration(kind, 1, t, total, args.nano)),
            (f"{t} x 1 thread", configuration(kind, t, 1, total // t, args.nano)),
        ]
        ref = runs[1][1]["units"] / runs[1][1]["seconds"]
        for name, r in runs:
            rate = r["units"] / r["seconds"]
            table.add_row(
                kind,
                name,
                f"{r['units']:.0f}" if kind != "gemm" else f"{r['units']:.0f} GFLOP",
                f"{r['seconds']:.1f}",
                f"{rate:.2f} {UNITS[kind]}",
                f"{rate / ref:.2f}",
                f"{r['rss_gb']:.2f} GB",
            )
        table.add_section()
    console.print(table)
    console.print(
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores after the run; generation: "
        "8 samples a prompt, up to 24 new tokens, the engine's default batches; training: full LM, micro-batch 2"
    )
    if args.out:
        Path(args.out).write_text(console.export_text())


if __name__ == "__main__":
    main()
