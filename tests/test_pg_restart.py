"""A PostgreSQL restart under a running store: the store reconnects by itself between transactions, a
transaction cut by the restart is recognised as the server going away (the loop's stages are retried on it),
and a smoke run whose server restarts mid-round finishes (`-m reliability`)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from store import Run, connection_lost, open_store
from tests.cli import ROOT
from tests.pg_server import PgServer, pg_bin

pytestmark = pytest.mark.skipif(pg_bin() is None, reason="PostgreSQL is not installed")


@pytest.fixture
def server():
    srv = PgServer()
    srv.start()
    yield srv
    srv.remove()


def test_the_store_reconnects_after_a_restart_and_names_a_lost_server(server: PgServer) -> None:
    store = open_store(server.url)
    with store.write() as s:
        s.add(Run(name="before", config={}))
    server.restart()
    with store.session() as s:  # the pool's connections died with the server: checked and replaced
        assert s.scalar(select(func.count(Run.id))) == 1
    server.stop()
    with pytest.raises(Exception) as caught, store.write() as s:
        s.add(Run(name="while-down", config={}))
    assert connection_lost(caught.value), repr(caught.value)
    assert not connection_lost(ValueError("connection"))  # only the database's own errors count
    server.start()
    with store.write() as s:
        s.add(Run(name="after", config={}))
    with store.session() as s:
        assert sorted(s.scalars(select(Run.name))) == ["after", "before"]
    store.dispose()


@pytest.mark.reliability
def test_a_smoke_run_whose_server_restarts_mid_round_finishes(server: PgServer, tmp_path: Path) -> None:
    args = ["iterate", "--preset", "smoke", "--rounds", "1", "--run-name", "pg", "--workdir", str(tmp_path / "w"),
            "--db", server.url]  # fmt: skip
    env = {**os.environ, "NO_COLOR": "1", "PREFECT_HOME": str(tmp_path / "prefect-home"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "videozero.cli.app", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    store = open_store(server.url, create=False) if _wait_for_store(server.url) else None
    assert store is not None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        with store.session() as s:
            running = s.scalar(select(func.count()).select_from(Run).where(Run.status == "running"))
        if running and _question_stage_started(store):
            break
        time.sleep(1)
    server.restart()  # mid-round: the question stage's connection is cut
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    store.dispose()


def _wait_for_store(url: str, seconds: float = 120) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            open_store(url, create=False).dispose()
            return True
        except Exception:
            time.sleep(0.5)
    return False


def _question_stage_started(store) -> bool:
    from store import Round

    with store.session() as s:
        stages = s.scalars(select(Round.stages)).all()
    return any(isinstance((st or {}).get("question"), dict) for st in stages)
