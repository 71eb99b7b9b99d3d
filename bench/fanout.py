"""What the Ray executor costs per task on this machine, beside the same work in one process.

Runs `videozero question` (mining one task per video, verification one task per chunk of candidates,
the tiny model) twice on the same generated clips: `--executor local` (SQLite) and `--executor ray` on a
real two-node Ray cluster on 127.0.0.1 (each node one CPU, inside a network namespace of its own, the
store on PostgreSQL through its Unix socket; `tests/ray_cluster.py`). Prints wall times, per-task seconds
by stage from the store's `tasks` table, the overhead of an empty Ray task (submit to result), and the GEMM
floor of this process, with the load average. A 2-core machine cannot show a speed-up: two one-CPU
nodes share the same two cores as the local process, so the figures are Ray's cost, not its gain;
docs/scale.md projects throughput per node from the per-task seconds.

Run (root, PostgreSQL started: eval "$(bash .ci/postgres.sh)"):
    python bench/fanout.py [--clips 6] [--videos REAL ...] [--chunk 4] [--out bench/results/fanout.txt]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL = ROOT.parent / "shared" / "videos" / "real"
DEFAULT_REAL = [
    REAL / "bbb_first180s_360p.mp4",
    REAL / "one-by-one-person-detection.mp4",
    REAL / "bottle-detection.mp4",
]


def make_clips(folder: Path, n: int) -> list[Path]:
    import numpy as np

    from videozero.video.synthetic import ClipSpec, EventSpec, ShotSpec, write_clip

    out = []
    for seed in range(n):
        rng = np.random.default_rng(seed)
        shots = [
            ShotSpec(duration_s=4.0, colour=tuple(int(x) for x in rng.integers(30, 220, 3)), pattern=p)
            for p in ("stripes", "checker", "rings", "flat")
        ]
        events = [EventSpec(kind="appear", start_s=1.0, end_s=2.5, colour=(230, 40, 40), at=(0.5, 0.5))]
        path = folder / f"clip{seed}.mp4"
        write_clip(ClipSpec(shots=shots, events=events, seed=seed), path)
        out.append(path)
    return out


def fresh_pg(admin_url: str, name: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(make_url(admin_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def run_question(
    db: str, workdir: Path, clips: list[Path], model: str, chunk: int, extra: list[str], wrap=None
) -> float:
    args = [
        sys.executable, "-m", "videozero.cli.app", "question", "--run", "bench",
        *(a for c in clips for a in ("--videos", str(c))), "--model", model, "--per-video", "6",
        "--n-full", "4", "--n-probe", "2", "--max-frames", "8", "--chunk", str(chunk),
        "--db", db, "--workdir", str(workdir), *extra,
    ]  # fmt: skip
    started = time.perf_counter()
    env = os.environ | {"RAY_AUTH_MODE": "disabled"}  # the bench's loopback-only cluster runs without tokens
    proc = subprocess.run((wrap or (lambda a: a))(args), cwd=ROOT, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"videozero question failed: {proc.stderr[-2000:]}")
    return time.perf_counter() - started


def task_seconds(db: str, warm_only: bool = False) -> dict[str, list[float]]:
    """Seconds of each finished task by stage (with `warm_only`, leaving out each worker process's first
    task of the stage, which loads its model or frame encoder)."""
    from store import open_store
    from store.tasks import task_rows

    store = open_store(db, create=False)
    with store.session() as s:
        rows = task_rows(s)
    store.dispose()
    out: dict[str, list[float]] = {}
    seen: set[tuple[str, int]] = set()
    for r in rows:
        first = (r["stage"], r["pid"]) not in seen
        seen.add((r["stage"], r["pid"]))
        if warm_only and first:
            continue
        out.setdefault(r["stage"], []).append(float(r["seconds"]))
    return out


def empty_task_ms(address: str, n: int = 200) -> float:
    """Median milliseconds from submitting an empty task to holding its result, on the cluster."""
    import ray

    ray.init(address=address, logging_level="ERROR", log_to_driver=False)

    @ray.remote(num_cpus=1)
    def nothing() -> int:
        return 0

    ray.get([nothing.remote() for _ in range(8)])  # workers started
    times = []
    for _ in range(n):
        t = time.perf_counter()
        ray.get(nothing.remote())
        times.append(time.perf_counter() - t)
    ray.shutdown()
    return 1000 * statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clips", type=int, default=6, help="generated 16 s clips")
    p.add_argument(
        "--videos", type=Path, nargs="*", default=None, help="real videos too (default: 3 shared clips)"
    )
    p.add_argument("--chunk", type=int, default=4)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args()
    pg = os.environ.get("VIDEOZERO_TEST_PG_URL")
    if not pg:
        raise SystemExit('start PostgreSQL first: eval "$(bash .ci/postgres.sh)"')
    import torch

    from bench.floor import gemm_gflops
    from tests.model_builds import tiny_qwen_dir
    from tests.ray_cluster import RayCluster, can_run, socket_url

    why = can_run()
    if why:
        raise SystemExit(f"cannot start the cluster: {why}")
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    root = Path(tempfile.mkdtemp(prefix="vz-fanout-"))
    real = [v for v in (DEFAULT_REAL if a.videos is None else a.videos) if v.exists()]
    clips = make_clips(root, a.clips) + real
    model = str(tiny_qwen_dir())
    gemm = gemm_gflops()
    say(f"fp32 GEMM floor: {gemm:.0f} GFLOP/s on {torch.get_num_threads()} threads")
    local_db = f"sqlite:///{root / 'local.db'}"
    wall_local = run_question(local_db, root / "local", clips, model, a.chunk, [])
    cluster = RayCluster(root / "ray")
    try:
        ray_db = fresh_pg(pg, "vz_bench_fanout")
        wall_ray = run_question(
            socket_url(ray_db), root / "ray", clips, model, a.chunk,
            ["--executor", "ray", "--ray-address", cluster.address], cluster.argv,
        )  # fmt: skip
        probe = subprocess.run(
            cluster.argv([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                          f"from bench.fanout import empty_task_ms; print(empty_task_ms({cluster.address!r}))"]),
            capture_output=True, text=True, cwd=ROOT, env=os.environ | cluster.client_env,
        )  # fmt: skip
        empty_ms = float(probe.stdout.strip().splitlines()[-1]) if probe.returncode == 0 else float("nan")
    finally:
        cluster.stop()
    load = os.getloadavg()[0]
    local, ray = task_seconds(local_db), task_seconds(ray_db)
    warm_local, warm_ray = task_seconds(local_db, warm_only=True), task_seconds(ray_db, warm_only=True)
    names = ", ".join(v.name for v in real) or "none"
    say(
        f"{a.clips} generated clips of 16 s and {len(real)} real videos ({names}); tiny model, chunks of {a.chunk}"
    )
    say(f"load average {load:.1f} on 2 cores (from this run; nothing else running)")
    say(f"{'':24}{'local':>12}{'ray (2 nodes x 1 CPU)':>24}{'ratio':>8}")
    say(f"{'whole command, s':24}{wall_local:>12.1f}{wall_ray:>24.1f}{wall_ray / wall_local:>8.2f}")
    for stage in ("mine", "verify"):
        lo, ra = local.get(stage, []), ray.get(stage, [])
        if lo and ra:
            ml, mr = statistics.median(lo), statistics.median(ra)
            say(f"{stage + ' task, median s':24}{ml:>12.2f}{mr:>24.2f}{mr / ml:>8.2f}")
            sl, sr = sum(lo), sum(ra)
            say(f"{stage + ' tasks, total s':24}{sl:>12.1f}{sr:>24.1f}{sr / sl:>8.2f}")
            wl, wr = warm_local.get(stage, []), warm_ray.get(stage, [])
            if wl and wr:
                ml, mr = statistics.median(wl), statistics.median(wr)
                say(f"{stage + ' warm task, median':24}{ml:>12.2f}{mr:>24.2f}{mr / ml:>8.2f}")
            say(f"{stage + ' tasks':24}{len(lo):>12}{len(ra):>24}")
    say(f"{'empty Ray task, ms':24}{'':>12}{empty_ms:>24.2f}")
    if a.out:
        a.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
