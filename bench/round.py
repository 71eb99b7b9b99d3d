"""Seconds per stage of one default round of the loop, and the share of each.

Run: python bench/round.py [--preset default] [--rounds N] [--workdir DIR] [--out FILE]
Runs the run-level stages (mine, learner: built and warmed up on first use, held-out questions, base
and warm-up evaluation) and then N rounds (question = propose + verify, solver GRPO, questioner GRPO,
evaluation, curriculum) through `videozero.stages` without Prefect, timing each by the wall clock, with
each stage's own peak resident memory (VmRSS sampled every 20 ms from the stage's start, the loop having
handed freed memory back between stages; on Linux) and the process's peak after it, and each stage's
language-model FLOPs (bench/floor.py's FlopMeter: every forward the stage runs, and the backward it implies)
with the utilisation of an fp32 GEMM timed at the start of the same run. Reuse a
work directory whose `models/` already holds the learner to leave the first-use build out. Prints
figures; never asserts them.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from videozero.quiet import quiet_libraries  # noqa: E402

quiet_libraries()  # figures, not library chatter (before transformers is imported)


def peak_rss_gb() -> float:
    """This process's peak resident memory so far (the stage that raised it is where it rose)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e9 if sys.platform == "darwin" else peak * 1024 / 1e9  # bytes on macOS, KiB on Linux


class StagePeak:
    """The largest VmRSS seen while a stage runs, sampled every 20 ms by a thread (Linux; else None)."""

    def __init__(self) -> None:
        self.peak: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def rss_gb() -> float | None:
        try:
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024 / 1e9
        except OSError:
            return None
        return None

    def _sample(self) -> None:
        while True:
            now = self.rss_gb()
            if now is not None:
                self.peak = max(self.peak or 0.0, now)
            if self._stop.wait(0.02):
                return

    def __enter__(self) -> StagePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", choices=["default", "smoke"])
    parser.add_argument("--workdir", help="work directory (default: a fresh temporary one)")
    parser.add_argument("--rounds", type=int, default=1, help="rounds to run (each one's stages apart)")
    parser.add_argument("--run-name", default="bench-round")
    parser.add_argument("--out", help="also write the output to this file")
    args = parser.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    from bench.floor import FlopMeter, gemm_gflops
    from videozero.memory import release_freed_memory
    from videozero.run_config import load_run_config
    from videozero.stages.curriculum import curriculum_stage
    from videozero.stages.evaluate import eval_stage, evaluate_checkpoint
    from videozero.stages.heldout import heldout_stage
    from videozero.stages.learner import learner_stage
    from videozero.stages.mine import mine_stage
    from videozero.stages.question import question_stage
    from videozero.stages.questioner import questioner_stage
    from videozero.stages.run import Lease, open_run_store
    from videozero.stages.solver import solver_stage

    gemm = gemm_gflops()

    workdir = args.workdir or tempfile.mkdtemp(prefix="vz-bench-round-")
    config = load_run_config(args.preset, run_name=args.run_name, workdir=workdir, rounds=args.rounds)
    console = Console(record=True, width=120)
    store = open_run_store(config)
    lease = Lease(store, config)
    run_id = lease.run_id
    timings: list[tuple[str, str, float, float | None, float, float]] = []

    def timed(scope: str, name: str, fn, *a):
        release_freed_memory()  # as the loop's stages do on their way out
        t = time.perf_counter()
        with FlopMeter() as meter, StagePeak() as own:
            result = fn(*a)
        timings.append((scope, name, time.perf_counter() - t, own.peak, peak_rss_gb(), meter.flops))
        console.print(f"{scope} {name}: {timings[-1][2]:.1f} s  {result if isinstance(result, dict) else ''}")
        return result

    try:
        timed("run", "mine", mine_stage, config, run_id)
        learner = timed("run", "learner", learner_stage, config, run_id)
        timed("run", "held-out questions", heldout_stage, config, run_id)
        for key in ("base", "warmup"):
            if key in learner:
                timed("run", f"evaluate {key}", evaluate_checkpoint, config, run_id, learner[key])
        for index in range(args.rounds):
            for name, fn in (
                ("question", question_stage),
                ("solver GRPO", solver_stage),
                ("questioner GRPO", questioner_stage),
                ("evaluation", eval_stage),
                ("curriculum", curriculum_stage),
            ):
                timed(f"round {index}", name, fn, config, run_id, index)
    finally:
        lease.release("finished")
    round_totals = {
        scope: sum(t[2] for t in timings if t[0] == scope)
        for scope, *_ in timings
        if scope.startswith("round")
    }
    rounds = "one" if args.rounds == 1 else str(args.rounds)
    table = Table(title=f"{rounds} {args.preset} round(s) ({workdir}), seconds per stage")
    for col in (
        "scope",
        "stage",
        "seconds",
        "share of the round",
        "LM TFLOP",
        "utilisation",
        "stage's own peak RSS",
        "process peak RSS after",
    ):
        table.add_column(col, justify="left" if col in ("scope", "stage") else "right")
    for scope, name, seconds, own, peak, flops in timings:
        total = round_totals.get(scope)
        share = f"{seconds / total:.0%}" if total else ""
        util = flops / (seconds * gemm * 1e9) if seconds > 0 else float("nan")
        table.add_row(
            scope,
            name,
            f"{seconds:.1f}",
            share,
            f"{flops / 1e12:.2f}",
            f"{util:.2f}",
            f"{own:.2f} GB" if own is not None else "n/a",
            f"{peak:.2f} GB",
        )
    table.add_section()
    for scope, total in round_totals.items():
        own_peak = max((t[3] or 0.0) for t in timings if t[0] == scope)
        table.add_row(scope, "total", f"{total:.1f}", "100%", "", "", f"{own_peak:.2f} GB", "")
    table.add_row("all", "total", f"{sum(t[2] for t in timings):.1f}", "", "", "", "", "")
    console.print(table)
    console.print(
        f"floor: fp32 GEMM {gemm:.0f} GFLOP/s on {torch.get_num_threads()} threads (utilisation = the stage's "
        f"language-model FLOPs / (seconds x GEMM rate)); load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores"
    )
    if args.out:
        Path(args.out).write_text(console.export_text())


if __name__ == "__main__":
    main()
