"""Concurrent writers and readers on one store: W verification-like writers and R `qa list` readers for a
while, then every row checked.

Run: python bench/load.py [--writers 8] [--readers 8] [--seconds 120] [--pg URL]
(PostgreSQL: $VIDEOZERO_TEST_PG_URL if set; the SQLite store is a temporary file). Each writer commits, in
one transaction, what verification commits for a question: the question row, its verdict and four attempt
rows; each reader runs the `qa list` query (filtered, newest 50) and its count. Afterwards every question a
writer saw committed must be in the store exactly once with its four attempts; an error any process saw
("database is locked" included) is reported. Prints figures (reader latency p50/p95, commits per second)
with the load average; never asserts them. `tests/test_store_load.py` runs a short version.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file sits beside bench/store.py, named like the `store` package: put the repository root first.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse  # noqa: E402
import multiprocessing as mp  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from sqlalchemy import func, select  # noqa: E402

from store import Attempt, Checkpoint, Question, Round, Run, Video, open_store  # noqa: E402
from store.bulk import insert_attempts  # noqa: E402
from store.queries import QuestionFilter, count_questions, list_questions  # noqa: E402

RUN = "load"


@dataclass
class LoadResult:
    backend: str
    writers: int
    readers: int
    seconds: float
    committed: int = 0  # questions the writers saw committed
    found: int = 0  # of those, in the store
    duplicated: int = 0  # texts stored more than once
    short_attempts: int = 0  # committed questions without their four attempts
    reads: int = 0
    read_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.committed - self.found

    def percentile(self, q: float) -> float:
        if not self.read_ms:
            return float("nan")
        ordered = sorted(self.read_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def prepare(url: str) -> tuple[int, int, int, int]:
    """A run, a round, a video and a checkpoint to hang the writers' rows on."""
    store = open_store(url)
    with store.write() as s:
        run = Run(name=RUN, config={})
        s.add(run)
        s.flush()
        rnd = Round(run_id=run.id, round_index=0)
        video = Video(path="/videos/load.mp4", content_hash=f"{os.getpid():064x}", status="ok")
        s.add_all([rnd, video])
        s.flush()
        ckpt = Checkpoint(run_id=run.id, role="solver", stage="base", path="nano", base_model="nano")
        s.add(ckpt)
        s.flush()
        ids = (run.id, rnd.id, video.id, ckpt.id)
    store.dispose()
    return ids


def _writer(url: str, ids: tuple[int, int, int, int], worker: int, until: float, out: mp.Queue) -> None:
    run_id, round_id, video_id, ckpt_id = ids
    store = open_store(url, create=False)
    committed, errors = [], []
    seq = 0
    while time.time() < until:
        text = f"load w{worker} #{seq}"
        try:
            with store.write() as s:
                q = Question(run_id=run_id, round_id=round_id, video_id=video_id, split="train", family="grounding",
                             text=text, answer="A", evidence=[[1.0, 2.0]], spec={}, status="candidate")  # fmt: skip
                s.add(q)
                s.flush()
                q.status, q.agreement, q.r_learn = "accepted", 0.5, 0.25
                insert_attempts(
                    s,
                    [
                        {"question_id": q.id, "checkpoint_id": ckpt_id, "mode": "full", "sample_index": i,
                         "raw_output": "<answer>A</answer>", "parsed_answer": "A", "correct": True, "reward": 1.0}
                        for i in range(4)
                    ],
                )  # fmt: skip
            committed.append(text)
        except Exception as exc:  # reported, never raised: the count is the result
            errors.append(f"writer {worker}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        seq += 1
    store.dispose()
    out.put(("w", committed, errors, []))


def _reader(url: str, worker: int, until: float, out: mp.Queue) -> None:
    store = open_store(url, create=False)
    latencies, errors = [], []
    flt = QuestionFilter(run=RUN, status="accepted")
    while time.time() < until:
        started = time.perf_counter()
        try:
            with store.session() as s:
                list_questions(s, flt, limit=50)
                count_questions(s, flt)
            latencies.append((time.perf_counter() - started) * 1000)
        except Exception as exc:
            errors.append(f"reader {worker}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    store.dispose()
    out.put(("r", [], errors, latencies))


def run_load(url: str, writers: int = 8, readers: int = 8, seconds: float = 120.0) -> LoadResult:
    """Run the load on the store at `url` (created if needed) and check every committed row."""
    ids = prepare(url)
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    until = time.time() + 8.0 + seconds  # every process started (imports) before the clock matters
    procs = [ctx.Process(target=_writer, args=(url, ids, w, until, out)) for w in range(writers)]
    procs += [ctx.Process(target=_reader, args=(url, r, until, out)) for r in range(readers)]
    for p in procs:
        p.start()
    result = LoadResult(open_store(url, create=False).url.get_backend_name(), writers, readers, seconds)
    committed: list[str] = []
    for _ in procs:
        _, texts, errors, latencies = out.get(timeout=seconds + 300)
        committed += texts
        result.errors += errors
        result.read_ms += latencies
    for p in procs:
        p.join(timeout=60)
    result.committed, result.reads = len(committed), len(result.read_ms)
    store = open_store(url, create=False)
    with store.session() as s:
        rows = s.execute(
            select(Question.text, func.count(Question.id))
            .where(Question.text.like("load w%"))
            .group_by(Question.text)
        ).all()
        attempts = dict(
            s.execute(
                select(Question.text, func.count(Attempt.id))
                .join(Attempt, Attempt.question_id == Question.id)
                .where(Question.text.like("load w%"))
                .group_by(Question.text)
            ).all()
        )
    store.dispose()
    stored = dict(rows)
    result.found = sum(t in stored for t in committed)
    result.duplicated = sum(n > 1 for n in stored.values())
    result.short_attempts = sum(attempts.get(t, 0) != 4 for t in committed)
    return result


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--pg", default=os.environ.get("VIDEOZERO_TEST_PG_URL"), help="PostgreSQL URL")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(run_load(f"sqlite:///{tmp}/load.db", args.writers, args.readers, args.seconds))
    if args.pg:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        name = f"videozero_load_{os.getpid()}"
        admin = create_engine(make_url(args.pg).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(args.pg).set(database=name).render_as_string(hide_password=False)
            results.append(run_load(url, args.writers, args.readers, args.seconds))
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    table = Table(title=f"{args.writers} writers + {args.readers} readers, {args.seconds:.0f} s each store")
    for col in ("store", "commits", "commits/s", "lost", "duplicated", "short attempts", "reads",
                "read p50 ms", "read p95 ms", "errors"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(
            r.backend, str(r.committed), f"{r.committed / r.seconds:.1f}", str(r.lost), str(r.duplicated),
            str(r.short_attempts), str(r.reads), f"{statistics.median(r.read_ms):.1f}" if r.read_ms else "-",
            f"{r.percentile(0.95):.1f}", str(len(r.errors)),
        )  # fmt: skip
    console = Console(width=150)
    console.print(table)
    for r in results:
        for e in r.errors[:5]:
            console.print(f"{r.backend}: {e}", markup=False)
    console.print(f"load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
