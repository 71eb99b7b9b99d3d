"""8 verification-like writers and 8 `qa list` readers on one store at once (bench/load.py, shortened):
every committed question is stored exactly once with its attempts, and no process sees an error
("database is locked" included). bench/load.py runs it for 2 minutes and prints the latencies."""

from __future__ import annotations

import pytest

from bench.load import run_load


@pytest.mark.slow
def test_concurrent_writers_and_readers_lose_and_duplicate_nothing(db_url: str) -> None:
    result = run_load(db_url, writers=8, readers=8, seconds=5)
    assert result.errors == []
    assert result.committed > 0 and result.reads > 0
    assert result.lost == 0 and result.duplicated == 0 and result.short_attempts == 0
