"""Shared fixtures: stores on a real SQLite file and on a real PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PG_URL = os.environ.get("VIDEOZERO_TEST_PG_URL")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _fresh_pg_database() -> Iterator[str]:
    """Create an empty database on the test server, yield its URL, drop it afterwards."""
    assert PG_URL is not None
    admin = create_engine(make_url(PG_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"vz_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store location: a SQLite file, or a fresh database on the PostgreSQL test server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    yield from pg_database()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh database on the PostgreSQL test server (no SQLite variant)."""
    yield from pg_database()


def pg_database() -> Iterator[str]:
    """A fresh test database, or a skip (a failure under VIDEOZERO_REQUIRE_PG) without a server."""
    if PG_URL is None:
        if os.environ.get("VIDEOZERO_REQUIRE_PG"):
            pytest.fail(
                "VIDEOZERO_REQUIRE_PG is set but VIDEOZERO_TEST_PG_URL is not: PostgreSQL tests cannot run"
            )
        pytest.skip('VIDEOZERO_TEST_PG_URL is not set: start a server with `eval "$(bash .ci/postgres.sh)"`')
    yield from _fresh_pg_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"
