"""A long run watched for leaks: `videozero iterate --rounds N` (smoke preset by default), then what the
process held after every round (resident memory, open files, threads, child processes), as the loop
records it with each round, and how much each grew per round after the first.

Run: python bench/long_run.py [--rounds 10] [--preset smoke] [--workdir DIR]
Prints figures with the load average; never asserts them. A flat column is what a leak-free loop shows;
the first round is left out of the slope (it loads the models and fills the caches).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import select  # noqa: E402

from store import Round, Run, open_store  # noqa: E402

COLUMNS = ("rss_mb", "open_files", "threads", "children")


def slope(values: list[float]) -> float:
    """Least-squares growth per round."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    return num / sum((i - mean_x) ** 2 for i in range(n))


def per_round(db: str, run: str) -> list[dict[str, float]]:
    store = open_store(db, create=False)
    with store.session() as s:
        rows = s.execute(
            select(Round.round_index, Round.stages).join(Run, Run.id == Round.run_id).where(Run.name == run)
        ).all()
    store.dispose()
    out = []
    for index, stages in sorted(rows):
        held = (stages or {}).get("resources") or {}
        out.append({"round": index, **{c: float(held.get(c, float("nan"))) for c in COLUMNS}})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--workdir", help="work directory (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(args.workdir or tmp)
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "videozero.cli.app", "iterate", "--preset", args.preset, "--rounds",
             str(args.rounds), "--run-name", "long", "--workdir", str(workdir)],
            capture_output=True, text=True, env={**os.environ, "COLUMNS": "150"},
        )  # fmt: skip
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            print(proc.stderr[-3000:])
            raise SystemExit(proc.returncode)
        rounds = per_round(f"sqlite:///{workdir / 'store.db'}", "long")
    table = Table(title=f"{args.rounds} rounds of the {args.preset} preset in {seconds / 60:.1f} min")
    for col in ("round", "resident MB", "open files", "threads", "children"):
        table.add_column(col, justify="right")
    for r in rounds:
        table.add_row(str(r["round"]), *(f"{r[c]:.0f}" for c in COLUMNS))
    later = rounds[1:]
    table.add_section()
    table.add_row("growth / round", *(f"{slope([r[c] for r in later]):+.2f}" for c in COLUMNS))
    console = Console(width=120)
    console.print(table)
    console.print(f"load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
