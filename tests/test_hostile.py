"""The hostile-input suite (tests/hostile.py): every case a real `videozero` command on its own copy of a
populated store; each must end in one clear sentence or a clean success, with no traceback and no stored
row lost or changed. docs/reliability.md holds the table of what each printed (`python -m tests.hostile`)."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.hostile import BEGIN, CASES, END, ROOT, Outcome, available, run_case, template_store

PG_URL = os.environ.get("VIDEOZERO_TEST_PG_URL")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    root = tmp_path_factory.mktemp("hostile")
    template = template_store(root / "template.db")
    todo = [c for c in CASES if available(c, PG_URL) is None]
    if os.environ.get("VIDEOZERO_HOSTILE_PROCESSES"):  # as `python -m tests.hostile`: a process per case
        with ThreadPoolExecutor(2) as pool:
            run = pool.map(lambda c: run_case(c, root / "cases", template, PG_URL), todo)
            return {o.case.id: o for o in run}
    # the same entry point in this process, one case after another: no 67 process starts in the suite
    return {c.id: run_case(c, root / "cases", template, PG_URL, in_process=True) for c in todo}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_gets_one_clear_sentence_and_loses_nothing(case, outcomes) -> None:
    why = available(case, PG_URL)
    if why is not None:
        pytest.skip(why)
    outcome = outcomes[case.id]
    assert not outcome.problems(), f"{outcome.problems()}\n{outcome.output[-2000:]}"


def test_the_suite_is_broad_and_its_table_is_current() -> None:
    areas = {c.area for c in CASES}
    assert len(CASES) >= 50 and {"videos", "store", "config", "names", "exports", "evaluation"} <= areas
    assert len({c.id for c in CASES}) == len(CASES)
    doc = (ROOT / "docs" / "reliability.md").read_text()
    table = doc.split(BEGIN, 1)[1].split(END, 1)[0]
    listed = [line.split("|")[1].strip() for line in table.strip().splitlines()[2:]]
    assert listed == [c.id for c in CASES], "rerun `python -m tests.hostile` to refresh docs/reliability.md"


def test_a_traversal_run_name_from_another_directory_writes_nothing_outside(tmp_path: Path) -> None:
    """Launched from an unrelated directory with a relative work directory: refused, nothing written."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    before = set(tmp_path.rglob("*"))
    proc = subprocess.run(
        [sys.executable, "-m", "videozero.cli.app", "iterate", "--preset", "smoke", "--workdir", "work",
         "--run-name", "../../../escaped"],
        cwd=elsewhere, capture_output=True, text=True, timeout=120, env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    assert proc.returncode == 1 and "is not allowed" in proc.stderr and "Traceback" not in proc.stderr
    assert set(tmp_path.rglob("*")) == before
