"""`videozero qa` and `videozero db` as a user runs them: formats, filters, and errors for bad input."""

from __future__ import annotations

import csv
import io
import json

import pytest

from store import open_store
from tests.cli import assert_one_sentence_error, videozero
from tests.sample_store import HOSTILE_TEXTS, populate


@pytest.fixture
def populated(sqlite_url: str) -> str:
    store = open_store(sqlite_url)
    populate(store)
    store.dispose()
    return sqlite_url


def test_list_formats_and_filters(populated: str) -> None:
    table = videozero("qa", "list", "--db", populated)
    assert table.returncode == 0, table.stderr
    assert "5 of 5 questions" in table.stdout and "grounding" in table.stdout
    rows = json.loads(
        videozero("qa", "list", "--db", populated, "--format", "json", "--status", "accepted").stdout
    )
    assert len(rows) == 3 and {r["status"] for r in rows} == {"accepted"}
    assert rows[0]["evidence"] == [[1.0, 2.0]]
    out = videozero("qa", "list", "--db", populated, "--format", "csv", "--search", "50%").stdout
    parsed = list(csv.DictReader(io.StringIO(out)))
    assert [r["text"] for r in parsed] == [HOSTILE_TEXTS[0]]
    assert json.loads(parsed[0]["evidence"]) == [[1.0, 2.0]]
    limited = json.loads(
        videozero("qa", "list", "--db", populated, "--format", "json", "--limit", "2").stdout
    )
    assert len(limited) == 2
    levels = json.loads(
        videozero(
            "qa", "list", "--db", populated, "--format", "json", "--level-min", "1", "--level-max", "2"
        ).stdout
    )
    assert sorted(r["level"] for r in levels) == [1, 1, 2]
    hostile = videozero(
        "qa", "list", "--db", populated, "--format", "json", "--search", "'; DROP TABLE questions; --"
    )
    assert hostile.returncode == 0 and json.loads(hostile.stdout) == []
    assert len(json.loads(videozero("qa", "list", "--db", populated, "--format", "json").stdout)) == 5


def test_show_and_stats(populated: str) -> None:
    first = json.loads(videozero("qa", "list", "--db", populated, "--format", "json", "--limit", "0").stdout)[
        -1
    ]
    shown = videozero("qa", "show", str(first["id"]), "--db", populated)
    assert shown.returncode == 0, shown.stderr
    for fragment in (
        HOSTILE_TEXTS[0],
        "[1.00, 2.00] s",
        "attempts by checkpoint and mode",
        "r_dep 0.25",
        "accepted",
    ):
        assert fragment in shown.stdout
    stats = json.loads(videozero("qa", "stats", "--db", populated, "--format", "json").stdout)
    grounding0 = next(r for r in stats if r["family"] == "grounding" and r["round"] == 0)
    assert grounding0["generated"] == 1 and grounding0["accuracy_by_mode"] == {"blind": 0.25, "full": 0.75}
    table = videozero("qa", "stats", "--db", populated, "--run", "demo")
    assert "blind_answerable 1" in table.stdout and "acc full" in table.stdout


def test_db_upgrade_creates_and_reports(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/new/store.db"
    up = videozero("db", "upgrade", "--db", url)
    assert up.returncode == 0, up.stderr
    cur = videozero("db", "current", "--db", url)
    assert "revision: 0006" in cur.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["qa", "list", "--db", "no-such-scheme"], "is not a database URL"),
        (
            ["qa", "list", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/x"],
            "Cannot connect to the database",
        ),
        (
            ["qa", "stats", "--db", "sqlite:////nonexistent/dir/store.db"],
            "No store at /nonexistent/dir/store.db",
        ),
        (["qa", "list", "--round", "two"], "Invalid value for '--round': Input should be a valid integer"),
        (
            ["qa", "list", "--status", "maybe"],
            "Invalid value for '--status': Value error, 'maybe' is not one of",
        ),
        (["qa", "list", "--limit", "-1"], "Invalid value for '--limit'"),
        (["qa", "list", "--run", "nope"], "No run named 'nope'"),
        (["qa", "show", "424242"], "No question with id 424242"),
        (["qa", "show", "abc"], "Invalid value for 'ID'"),
        (["qa", "list", "--level-min", "3", "--level-max", "1"], "difficulty range is empty"),
    ],
)
def test_bad_input_gives_one_clear_error(populated: str, args: list[str], fragment: str) -> None:
    if "--db" not in args:
        args = [*args, "--db", populated]
    assert_one_sentence_error(videozero(*args), fragment)


def test_show_displays_the_zoom_turns_of_attempts(populated: str) -> None:
    from sqlalchemy import select

    from store import Attempt, Checkpoint, Question

    store = open_store(populated, create=False)
    with store.write() as s:
        qid = s.scalars(select(Question.id).order_by(Question.id)).first()
        ck = s.scalars(select(Checkpoint.id).order_by(Checkpoint.id)).first()
        tool_turns = [
            {"said": '<video_zoom>{"segment": [1, 2]}</video_zoom>', "call": {"segment": [1.0, 2.0], "fps": 2.0,
             "frames": [1.0, 1.5, 2.0], "fallback": False}},
            {"said": "<video_zoom>[oops</video_zoom>", "call": {"error": "the call is not JSON"}},
            {"said": "<think></think><evidence>[1.0, 2.0]</evidence><answer>A</answer>"},
        ]  # fmt: skip
        c2f = {"coarse": {"answer": "B", "confidence": 0.41}, "zoomed": True, "kept": "zoom",
               "zoom": {"answer": "A", "confidence": 0.93, "frames": [1.0, 1.5], "spans": [[1, 2]]}}  # fmt: skip
        for mode, turns in (("zoom_tool", tool_turns), ("coarse_to_fine", c2f)):
            s.add(
                Attempt(
                    question_id=qid, checkpoint_id=ck, mode=mode, sample_index=0, raw_output="x", turns=turns
                )
            )
    store.dispose()
    out = videozero("qa", "show", str(qid), "--db", populated)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "zoom [1.0, 2.0] s at 2.0 fps: 3 frames at 1.0, 1.5, 2.0 s" in text
    assert "tool refused: the call is not JSON" in text and "turn 3:" in text
    assert "coarse: B (confidence 0.41)" in text and "zoomed into 2 frames (1.0, 1.5 s): A" in text
    assert "kept: zoom" in text
    shown = json.loads(videozero("qa", "show", str(qid), "--db", populated, "--format", "json").stdout)
    assert any(x.get("turns") == c2f for x in shown["sample_outputs"])
