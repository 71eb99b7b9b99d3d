"""Store throughput: batched inserts of 100,000 questions x 5 attempts, and `qa list` query latency.

Run: python bench/store.py [--questions 100000] [--pg URL]   (PostgreSQL: $VIDEOZERO_TEST_PG_URL if set)
Prints figures; never asserts them. Targets on 2 cores: 100,000 question inserts < 5 s on SQLite,
p95 filtered query < 50 ms. The floor, measured in the same run after the queries: the same question
rows (JSON already serialised) through the database driver's own `executemany` into the same table; the
ratio store / floor is what SQLAlchemy and the store's batching add.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the `store` package: put the repository root, not bench/, first on the path.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from store import Checkpoint, Round, Run, Video, open_store  # noqa: E402
from store.bulk import insert_attempts, insert_questions  # noqa: E402
from store.queries import QuestionFilter, count_questions, list_questions  # noqa: E402

FAMILIES = ["grounding", "ordering", "arrow_of_time", "what_next", "counting", "semantic_grounding"]
WORDS = [
    "when",
    "does",
    "the",
    "red",
    "square",
    "appear",
    "after",
    "the",
    "cut",
    "before",
    "person",
    "enters",
    "door",
    "opens",
    "ball",
    "moves",
]


def build(url: str, n_questions: int, attempts_per: int) -> dict[str, float]:
    store = open_store(url)
    rng = random.Random(0)
    with store.write() as s:
        run = Run(name="bench", config={})
        s.add(run)
        s.flush()
        rounds = [Round(run_id=run.id, round_index=i) for i in range(5)]
        videos = [
            Video(path=f"/videos/clip_{i:04d}.mp4", content_hash=uuid.uuid4().hex, status="ok")
            for i in range(200)
        ]
        s.add_all(rounds + videos)
        s.flush()
        ckpt = Checkpoint(run_id=run.id, role="solver", stage="base", path="nano", base_model="nano")
        s.add(ckpt)
        s.flush()
        round_ids, video_ids, run_id, ckpt_id = (
            [r.id for r in rounds],
            [v.id for v in videos],
            run.id,
            ckpt.id,
        )
    rows = []
    for i in range(n_questions):
        start = rng.uniform(0, 50)
        rows.append(
            {
                "run_id": run_id,
                "round_id": round_ids[i % 5],
                "video_id": rng.choice(video_ids),
                "family": FAMILIES[i % len(FAMILIES)],
                "level": rng.randint(0, 4),
                "writer": "template" if i % 3 else "model",
                "text": " ".join(rng.choices(WORDS, k=12)) + f" #{i}",
                "options": ["A clip", "B clip", "C clip", "D clip"],
                "answer": "B",
                "evidence": [[round(start, 2), round(start + 3, 2)]],
                "spec": {"gap": 2},
                "status": "accepted" if rng.random() < 0.4 else "rejected",
                "reject_reason": None,
                "agreement": rng.random(),
                "r_learn": rng.random() / 2,
                "r_dep": rng.random(),
                "r_evid": rng.random(),
            }
        )
    t0 = time.perf_counter()
    with store.write() as s:
        ids = insert_questions(s, rows)
    t_questions = time.perf_counter() - t0
    attempts = [
        {
            "question_id": qid,
            "checkpoint_id": ckpt_id,
            "mode": "full",
            "sample_index": k,
            "raw_output": "<think></think><evidence>[1.0, 4.0]</evidence><answer>B</answer>",
            "parsed_answer": "B",
            "parsed_spans": [[1.0, 4.0]],
            "format_ok": True,
            "correct": k % 2 == 0,
            "iou": 0.5,
            "reward": 1.2,
        }
        for qid in ids
        for k in range(attempts_per)
    ]
    t0 = time.perf_counter()
    with store.write() as s:
        insert_attempts(s, attempts)
    t_attempts = time.perf_counter() - t0
    if store.url.get_backend_name() == "postgresql":
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    else:
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    latencies = time_queries(store, rng)
    floor_s = driver_floor(store, rows)
    store.dispose()
    return {"questions_s": t_questions, "attempts_s": t_attempts, "floor_s": floor_s, **latencies}


def driver_floor(store, rows: list[dict]) -> float:
    """Seconds for the database driver's `executemany` of `rows` (JSON pre-serialised) into `questions`."""
    now = datetime.now(UTC).isoformat(sep=" ")
    rows = [{**r, "split": "train", "created_at": now} for r in rows]  # the ORM's own defaults
    columns = list(rows[0])
    mark = "?" if store.engine.dialect.paramstyle == "qmark" else "%s"
    sql = f"INSERT INTO questions ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
    values = [
        tuple(json.dumps(r[c]) if isinstance(r[c], list | dict) else r[c] for c in columns) for r in rows
    ]
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        t0 = time.perf_counter()
        for i in range(0, len(values), 5_000):
            cursor.executemany(sql, values[i : i + 5_000])
        raw.commit()
        return time.perf_counter() - t0
    finally:
        raw.close()


def time_queries(store, rng: random.Random, repeats: int = 40) -> dict[str, float]:
    filters: list[Callable[[], QuestionFilter]] = [
        lambda: QuestionFilter(
            run="bench", round=rng.randrange(5), family=rng.choice(FAMILIES), status="accepted"
        ),
        lambda: QuestionFilter(run="bench", level_min=1, level_max=3, status="rejected"),
        lambda: QuestionFilter(run="bench", text=rng.choice(WORDS) + " " + rng.choice(WORDS)),
        lambda: QuestionFilter(video=f"clip_{rng.randrange(200):04d}"),
        lambda: QuestionFilter(family=rng.choice(FAMILIES), round=rng.randrange(5)),
    ]
    times: list[float] = []
    count_times: list[float] = []
    with store.session() as s:
        for _ in range(repeats):
            for make in filters:
                flt = make()
                t0 = time.perf_counter()
                list_questions(s, flt, limit=50)
                times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                count_questions(s, flt)
                count_times.append(time.perf_counter() - t0)
    q = statistics.quantiles(times, n=20)
    qc = statistics.quantiles(count_times, n=20)
    return {
        "list_median_ms": statistics.median(times) * 1000,
        "list_p95_ms": q[18] * 1000,
        "count_median_ms": statistics.median(count_times) * 1000,
        "count_p95_ms": qc[18] * 1000,
    }


def fresh_pg(url: str) -> tuple[str, Callable[[], None]]:
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"vz_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(url).set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=100_000)
    parser.add_argument("--attempts", type=int, default=5)
    parser.add_argument("--pg", default=os.environ.get("VIDEOZERO_TEST_PG_URL"))
    args = parser.parse_args()
    console = Console(width=150)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        console.print(f"SQLite: {args.questions:,} questions x {args.attempts} attempts ...")
        results["SQLite"] = build(f"sqlite:///{Path(tmp) / 'bench.db'}", args.questions, args.attempts)
    if args.pg:
        console.print(f"PostgreSQL: {args.questions:,} questions x {args.attempts} attempts ...")
        url, drop = fresh_pg(args.pg)
        try:
            results["PostgreSQL"] = build(url, args.questions, args.attempts)
        finally:
            drop()
    else:
        console.print("[yellow]PostgreSQL skipped: pass --pg URL or set VIDEOZERO_TEST_PG_URL[/]")
    table = Table(
        title=f"store throughput ({args.questions:,} questions, {args.questions * args.attempts:,} attempts)"
    )
    for col in (
        "backend",
        "questions s",
        "questions/s",
        "driver floor s",
        "x floor",
        "attempts s",
        "attempts/s",
        "list median ms",
        "list p95 ms",
        "count median ms",
        "count p95 ms",
    ):
        table.add_column(col, justify="right")
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['questions_s']:.2f}",
            f"{args.questions / r['questions_s']:,.0f}",
            f"{r['floor_s']:.2f}",
            f"{r['questions_s'] / r['floor_s']:.2f}",
            f"{r['attempts_s']:.2f}",
            f"{args.questions * args.attempts / r['attempts_s']:,.0f}",
            f"{r['list_median_ms']:.1f}",
            f"{r['list_p95_ms']:.1f}",
            f"{r['count_median_ms']:.1f}",
            f"{r['count_p95_ms']:.1f}",
        )
    console.print(table)
    console.print("targets: 100,000 question inserts < 5 s on SQLite; p95 filtered `qa list` query < 50 ms")
    console.print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
