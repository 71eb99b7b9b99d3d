"""The QA browser's page times on a store of 100,000 questions (target: p95 under 300 ms on 2 cores).

Run: python bench/browse.py [--questions 100000] [--attempts 10] [--requests 200] [--pg URL]

Builds a store: five generated clips really mined (segments in the store, frames in the cache) and one run
of ten rounds whose questions are spread over them, each with `--attempts` rollouts in the five
verification modes (spans and answers drawn at random: the page's work does not depend on their values).
Then starts `videozero browse` on it as a user would and times, from this process over HTTP, one request
at a time: the question list (first page, filtered pages, text search, deep pages), a question page
(random questions), a thumbnail (first cut and cached), and the floor measured in the same run: a static
file from the same server (HTTP, routing and the server's own cost, no store work). Prints figures and
their ratio to the floor; never asserts them. Run it alone: nothing else heavy on the machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This folder holds store.py, named like the `store` package: put the repository root first on the path.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import http.client  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from urllib.parse import urlencode  # noqa: E402

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.store import FAMILIES, WORDS  # noqa: E402  (the same words and families as its store bench)
from store import Checkpoint, Round, Run, RunVideo, open_store  # noqa: E402
from store.bulk import insert_attempts, insert_questions  # noqa: E402
from videozero.stages.mine import mine_videos  # noqa: E402
from videozero.video.decode import MINING_SAMPLING  # noqa: E402
from videozero.video.samples import generated_specs  # noqa: E402
from videozero.video.synthetic import write_clip  # noqa: E402

MODES = ["full", "blind", "masked", "key_only", "random_span"]
REASONS = [None, "too_easy", "too_hard", "blind_solvable", "unanswerable", "duplicate"]


def build(url: str, workdir: Path, n_questions: int, attempts_per: int) -> dict[str, float]:
    """Write the benchmark's store; returns how long its parts took."""
    rng = random.Random(0)
    store = open_store(url)
    specs = generated_specs()
    clips = [write_clip(specs[name], workdir / "clips" / name) for name in list(specs)[:5]]
    t0 = time.perf_counter()
    summary = mine_videos(store, [c.path for c in clips], MINING_SAMPLING, cache_dir=workdir / "cache")
    mined = time.perf_counter() - t0
    videos = [(r.video_id, float(r.duration_s or 10.0)) for r in summary.results]
    with store.write() as s:
        run = Run(name="bench-browse", config={"workdir": str(workdir)}, status="finished")
        s.add(run)
        s.flush()
        for vid, _ in videos:
            s.add(RunVideo(run_id=run.id, video_id=vid))
        rounds = [Round(run_id=run.id, round_index=i) for i in range(10)]
        s.add_all(rounds)
        s.flush()
        ckpt = Checkpoint(
            run_id=run.id, role="solver", stage="warmup", path=str(workdir / "w"), base_model="nano"
        )
        s.add(ckpt)
        s.flush()
        run_id, round_ids, ckpt_id = run.id, [r.id for r in rounds], ckpt.id
    rows = []
    for i in range(n_questions):
        vid, duration = videos[i % len(videos)]
        start = rng.uniform(0, max(duration - 2, 0.5))
        status = "accepted" if rng.random() < 0.4 else "rejected"
        rows.append(
            {
                "run_id": run_id,
                "round_id": round_ids[i * len(round_ids) // n_questions],
                "video_id": vid,
                "split": "train" if i % 10 else "heldout",
                "family": FAMILIES[i % len(FAMILIES)],
                "level": rng.randint(0, 4),
                "writer": "template" if i % 3 else "model",
                "text": " ".join(rng.choices(WORDS, k=14)) + f" #{i}?",
                "options": [
                    f"from {start:.1f} s to {start + 2:.1f} s",
                    "from 0.0 s to 1.0 s",
                    "from 3.0 s to 5.0 s",
                ],
                "answer": "A",
                "evidence": [[round(start, 2), round(start + 2, 2)]],
                "spec": {"query": [{"label": "Query", "times": [round(start + 1, 2)]}]},
                "status": status,
                "reject_reason": None if status == "accepted" else rng.choice(REASONS[1:]),
                "agreement": rng.random(),
                "r_learn": rng.random() / 2,
                "r_dep": rng.random(),
                "r_evid": rng.random(),
                "r_q": rng.random() * 2,
            }
        )
    t0 = time.perf_counter()
    with store.write() as s:
        ids = insert_questions(s, rows)
    questions_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for chunk in range(0, len(ids), 10_000):
        attempts = []
        for qid in ids[chunk : chunk + 10_000]:
            for k in range(attempts_per):
                mode = MODES[0] if k < attempts_per - 4 else MODES[k - attempts_per + 5]
                a = rng.uniform(0, 8)
                attempts.append(
                    {
                        "question_id": qid,
                        "checkpoint_id": ckpt_id,
                        "mode": mode,
                        "sample_index": k if mode == "full" else 0,
                        "raw_output": f"<think>...</think><evidence>[{a:.1f}, {a + 2:.1f}]</evidence><answer>A</answer>",
                        "parsed_answer": rng.choice("ABC"),
                        "parsed_spans": [[round(a, 1), round(a + 2, 1)]],
                        "format_ok": True,
                        "correct": rng.random() < 0.4,
                        "iou": rng.random(),
                        "reward": rng.random() * 2,
                    }
                )
        with store.write() as s:
            insert_attempts(s, attempts)
    attempts_s = time.perf_counter() - t0
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    store.dispose()
    return {
        "mine_s": mined,
        "questions_s": questions_s,
        "attempts_s": attempts_s,
        "first_id": ids[0],
        "last_id": ids[-1],
    }


def serve(url: str, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "videozero.cli.app", "browse", "--db", url, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if get(port, "/static/browse.css")[0] == 200:
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"videozero browse did not start: {proc.communicate()[1]}")


def get(port: int, path: str) -> tuple[int, float]:
    """One GET on a fresh connection (as a browser's first request); (status, seconds to the last byte)."""
    t = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, time.perf_counter() - t


def timed(port: int, paths: list[str]) -> list[float]:
    out = []
    for path in paths:
        status, seconds = get(port, path)
        if status != 200:
            raise SystemExit(f"{path} answered {status}")
        out.append(seconds)
    return out


def pct(values: list[float], q: float) -> float:
    return (
        statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=100_000)
    parser.add_argument("--attempts", type=int, default=10, help="rollouts per question (5 modes)")
    parser.add_argument("--requests", type=int, default=200, help="requests per kind of page")
    parser.add_argument("--pg", default=None, help="a PostgreSQL URL (an empty database) instead of SQLite")
    args = parser.parse_args()
    console = Console(width=150)
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = args.pg or f"sqlite:///{workdir / 'store.db'}"
        built = build(url, workdir, args.questions, args.attempts)
        size = os.path.getsize(workdir / "store.db") / 1e6 if not args.pg else float("nan")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proc = serve(url, port)
        try:
            n = args.requests
            first, last = int(built["first_id"]), int(built["last_id"])
            pages = args.questions // 50
            filtered = [
                {"run": "bench-browse", "family": rng.choice(FAMILIES), "status": rng.choice(["accepted", "rejected"]),
                 "round": rng.randrange(10)}
                for _ in range(n)
            ]  # fmt: skip
            kinds = {
                "floor: static file": ["/static/browse.css"] * n,
                "questions, first page": ["/questions"] * n,
                "questions, run+round+family+status": ["/questions?" + urlencode(f) for f in filtered],
                "questions, text search": [
                    "/questions?" + urlencode({"search": f"#{rng.randrange(args.questions)}?"})
                    for _ in range(n)
                ],
                "questions, random page": [
                    f"/questions?page={rng.randrange(1, pages + 1)}" for _ in range(n)
                ],
                "question page": [f"/questions/{rng.randint(first, last)}" for _ in range(n)],
            }
            for paths in kinds.values():  # warm: imports, templates, SQLite page cache
                timed(port, paths[:5])
            times = {kind: timed(port, paths) for kind, paths in kinds.items()}
            frames = [f"/videos/{v}/frames/{ms}.jpg" for v in (1, 2) for ms in (1000, 2500, 4000)]
            cold = timed(port, frames)
            warm = timed(port, frames)
            times["thumbnail, first cut"] = cold
            times["thumbnail, kept"] = warm
            # the run's report (every checkpoint's figures, constants, paired changes) is computed once per
            # change of the run's figures, then reused: the first request pays for it
            times["run page, first"] = timed(port, ["/runs/1"])
            times["run page, again"] = timed(port, ["/runs/1"] * 20)
            times["checkpoints page"] = timed(port, ["/runs/1/checkpoints"] * 20)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    floor = statistics.median(times["floor: static file"])
    load = os.getloadavg()
    table = Table(
        title=(
            f"videozero browse on {args.questions:,} questions x {args.attempts} attempts "
            f"({'PostgreSQL' if args.pg else f'SQLite, {size:.0f} MB'}); one request at a time, fresh connection"
        ),
        title_justify="left",
    )
    for col in ("page", "requests", "p50 ms", "p95 ms", "max ms", "p50 / floor"):
        table.add_column(col, justify="left" if col == "page" else "right")
    for kind, values in times.items():
        table.add_row(
            kind, str(len(values)), f"{1000 * statistics.median(values):.1f}", f"{1000 * pct(values, 95):.1f}",
            f"{1000 * max(values):.1f}", f"{statistics.median(values) / floor:.1f}x",
        )  # fmt: skip
    console.print(table)
    console.print(
        f"store built: mining 5 clips {built['mine_s']:.1f} s, {args.questions:,} questions "
        f"{built['questions_s']:.1f} s, {args.questions * args.attempts:,} attempts {built['attempts_s']:.1f} s; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} cores"
    )


if __name__ == "__main__":
    main()
