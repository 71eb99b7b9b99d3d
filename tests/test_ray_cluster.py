"""Mining and verification on a real two-node Ray cluster (127.0.0.1, in a network namespace of the
test's own) over PostgreSQL: tasks run on both nodes and store exactly what the same command stores in
one process; a node killed while its worker verifies has its tasks retried on the other node, and no
verdict or attempt is written twice."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from store import Attempt, Question, open_store
from store.tasks import task_nodes, task_rows
from tests.cli import ROOT
from tests.model_builds import tiny_qwen_dir
from tests.ray_cluster import RayCluster, can_run, socket_url
from tests.store_fingerprint import differences, fingerprint
from videozero.video.synthetic import ClipSpec, EventSpec, ShotSpec, write_clip

pytestmark = [pytest.mark.postgres, pytest.mark.ray]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[RayCluster]:
    why = can_run()
    if why:
        pytest.skip(why)
    c = RayCluster(tmp_path_factory.mktemp("ray"))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("clips")
    out = []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        shots = [
            ShotSpec(duration_s=3.0, colour=tuple(int(x) for x in rng.integers(30, 220, 3)), pattern=p)
            for p in ("stripes", "checker", "rings")
        ]
        events = [EventSpec(kind="appear", start_s=1.0, end_s=2.0, colour=(230, 40, 40), at=(0.5, 0.5))]
        path = root / f"clip{seed}.mp4"
        write_clip(ClipSpec(shots=shots, events=events, seed=seed), path)
        out.append(path)
    return out


def _cli(args: list[str], db: str, workdir: Path, extra: list[str], argv=None, **popen) -> subprocess.Popen:
    """`videozero ARGS --db DB --workdir W EXTRA`, in the cluster's namespace when `argv` wraps it."""
    full = [sys.executable, "-m", "videozero.cli.app", *args, "--db", db, "--workdir", str(workdir), *extra]
    env = {
        **os.environ,
        "COLUMNS": "200",
        "NO_COLOR": "1",
        "OMP_NUM_THREADS": "1",
        "RAY_AUTH_MODE": "disabled",
    }
    return subprocess.Popen(
        (argv or (lambda a: a))(full),
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def _question(db: str, workdir: Path, videos: list[Path], extra: list[str], argv=None) -> subprocess.Popen:
    """`videozero question` on the clips with the tiny model, small budgets, chunks of two candidates."""
    args = [
        "question", "--run", "scale", *(a for v in videos for a in ("--videos", str(v))),
        "--model", str(tiny_qwen_dir()), "--per-video", "3", "--n-full", "2", "--n-probe", "1",
        "--max-frames", "6", "--chunk", "2",
    ]  # fmt: skip
    return _cli(args, db, workdir, extra, argv)


def _eval(db: str, workdir: Path, extra: list[str], argv=None) -> subprocess.Popen:
    """`videozero eval` of the run's verifying checkpoint on its held-out questions."""
    return _cli(["eval", "--model", "base", "--run", "scale", "--max-frames", "6"], db, workdir, extra, argv)


def _finish(proc: subprocess.Popen, timeout: float = 400) -> None:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, (out[-2000:], err[-3000:])


def _attempts(db: str) -> list[tuple]:
    """Every attempt's text by (question text, mode, sample): what each verification rollout wrote."""
    store = open_store(db, create=False)
    with store.session() as s:
        texts = {q.id: (q.family, q.text) for q in s.scalars(select(Question))}
        rows = sorted(
            (texts[a.question_id], a.mode, a.sample_index, a.raw_output) for a in s.scalars(select(Attempt))
        )
    store.dispose()
    return rows


def _questions(db: str) -> list[tuple]:
    """Every question as written (video, family, level, text, options, answer, evidence) with how many
    attempts it has in each mode: what must not depend on where the tasks ran."""
    store = open_store(db, create=False)
    with store.session() as s:
        modes: dict[int, dict[str, int]] = {}
        for qid, mode, n in s.execute(
            select(Attempt.question_id, Attempt.mode, func.count()).group_by(
                Attempt.question_id, Attempt.mode
            )
        ):
            modes.setdefault(qid, {})[mode] = n
        rows = sorted(
            (
                q.split,
                q.family,
                q.level,
                q.text,
                repr(q.options),
                q.answer,
                repr(q.evidence),
                q.status != "candidate",
                sorted(modes.get(q.id, {}).items()),
            )
            for q in s.scalars(select(Question))
        )
    store.dispose()
    return rows


def _counts(db: str) -> tuple[int, int, int]:
    store = open_store(db, create=False)
    with store.session() as s:
        pending = s.scalar(select(func.count()).where(Question.status == "candidate"))
        attempts = s.scalar(select(func.count(Attempt.id)))
        verified = s.scalar(select(func.count()).where(Question.verification.is_not(None)))
    store.dispose()
    return pending, attempts, verified


def test_mining_and_verification_run_on_both_nodes_and_store_what_one_process_stores(
    cluster: RayCluster, clips: list[Path], pg_url: str, tmp_path: Path
) -> None:
    local_db = f"sqlite:///{tmp_path / 'local.db'}"
    _finish(_question(local_db, tmp_path / "local", clips, []))
    ray_args = ["--executor", "ray", "--ray-address", cluster.address]
    _finish(_question(socket_url(pg_url), tmp_path / "ray", clips, ray_args, cluster.argv))
    # held-out evaluation fanned out too
    _finish(_eval(local_db, tmp_path / "local", []))
    _finish(_eval(socket_url(pg_url), tmp_path / "ray", ray_args, cluster.argv))
    # the same questions, verdicts, rollouts and answers (word for word) as in one process
    assert _questions(pg_url) == _questions(local_db)
    assert differences(fingerprint(local_db), fingerprint(pg_url)) == []
    assert _attempts(pg_url) == _attempts(local_db)
    assert _counts(pg_url) == _counts(local_db)
    assert differences(fingerprint(local_db), fingerprint(pg_url)) == []
    assert _attempts(pg_url) == _attempts(local_db)
    store = open_store(pg_url, create=False)
    with store.session() as s:
        mine, verify, rows = task_nodes(s, 1, "mine"), task_nodes(s, 1, "verify"), task_rows(s)
        evaluated = task_nodes(s, 1, "eval")
    store.dispose()
    assert {r["executor"] for r in rows} == {"ray"}
    assert len(mine) == 2 and sum(mine.values()) == len(clips), mine  # every video once, on both nodes
    assert len(verify) == 2 and sum(verify.values()) >= 2, verify
    assert sum(evaluated.values()) >= 1, evaluated


def test_a_node_killed_mid_verification_has_its_tasks_retried_elsewhere_without_duplicates(
    cluster: RayCluster, clips: list[Path], pg_url: str, tmp_path: Path
) -> None:
    local_db = f"sqlite:///{tmp_path / 'local.db'}"
    _finish(_question(local_db, tmp_path / "local", clips, []))
    cluster.pause_flag.write_text("hold")  # the second node's workers now stop inside verification
    try:
        ray_args = ["--executor", "ray", "--ray-address", cluster.address]
        proc = _question(socket_url(pg_url), tmp_path / "ray", clips, ray_args, cluster.argv)
        paused = cluster.wait_paused(timeout=300)
        assert paused, proc.communicate(timeout=60)
        assert cluster.kill_second_node() > 0
        _finish(proc)
    finally:
        cluster.pause_flag.unlink(missing_ok=True)
    # every candidate verified once, by the head's workers for the killed node's tasks
    assert _counts(pg_url) == _counts(local_db)
    assert differences(fingerprint(local_db), fingerprint(pg_url)) == []
    assert _attempts(pg_url) == _attempts(local_db)
    store = open_store(pg_url, create=False)
    with store.session() as s:
        verify = task_nodes(s, 1, "verify")
        dup = s.execute(
            select(Attempt.question_id, Attempt.mode, Attempt.sample_index, func.count())
            .group_by(Attempt.question_id, Attempt.mode, Attempt.sample_index)
            .having(func.count() > 1)
        ).all()
    store.dispose()
    assert dup == []
    assert len(verify) == 1, verify  # the killed node finished no verification task
