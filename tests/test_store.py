"""The QA store on a real SQLite file and a real PostgreSQL server: tables, migrations, concurrency."""

from __future__ import annotations

import multiprocessing as mp
from datetime import datetime

import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from store import (
    Attempt,
    Checkpoint,
    Metric,
    Question,
    Run,
    RunVideo,
    Segment,
    StoreError,
    Video,
    open_store,
)
from store.engine import create_store_engine, current_revision, head_revision, upgrade
from store.queries import QuestionFilter, count_questions, list_questions, question_detail, question_stats
from store.tables import Base
from tests.sample_store import HOSTILE_TEXTS, populate


def test_every_table_round_trips(db_url: str) -> None:
    store = open_store(db_url)
    ids = populate(store)
    with store.session() as s:
        run = s.get(Run, ids["run"])
        assert run.config == {"rounds": 2, "model": "nano"} and run.status == "running"
        assert isinstance(run.created_at, datetime)
        assert [r.round_index for r in run.rounds] == [0, 1]
        assert run.rounds[0].stages == {"mine": "done"}
        video = s.scalars(select(Video).order_by(Video.id)).first()
        assert (video.path, video.duration_s, video.fps, video.frame_count, video.size_bytes) == (
            "/data/clip_0.mp4",
            10.0,
            25.0,
            250,
            1000,
        )
        seg = s.scalars(select(Segment)).one()
        assert (seg.level, seg.start_s, seg.end_s, seg.saliency_parts, seg.labels) == (
            "shot",
            0.0,
            4.0,
            {"motion": 0.5},
            ["dog"],
        )
        assert s.scalars(select(RunVideo)).one().split == "heldout"
        q = s.get(Question, ids["question"])
        assert q.text == HOSTILE_TEXTS[0] and q.evidence == [[1.0, 2.0]] and q.spec == {"k": 0}
        assert (q.r_learn, q.r_dep, q.r_evid, q.agreement) == (0.5, 0.25, 0.1, 0.5)
        assert len(q.attempts) == 8
        a = q.attempts[0]
        assert (a.mode, a.sample_index, a.parsed_spans, a.format_ok, a.correct) == (
            "full",
            0,
            [[1.0, 2.0]],
            True,
            True,
        )
        assert s.get(Checkpoint, ids["checkpoint"]).stage == "base"
        assert s.scalars(select(Metric)).one().value == 0.5
        q2 = Question(
            run_id=run.id,
            round_id=None,
            video_id=video.id,
            family="grounding",
            text="dup",
            answer="x",
            dedup_of=q.id,
        )
        s.add(q2)
    with store.session() as s:
        assert s.scalars(select(Question).where(Question.text == "dup")).one().dedup_of == ids["question"]
    store.dispose()


def test_unique_and_foreign_keys_are_enforced(db_url: str) -> None:
    store = open_store(db_url)
    populate(store)
    with pytest.raises(IntegrityError), store.session() as s:
        s.add(Run(name="demo"))
    with pytest.raises(IntegrityError), store.session() as s:
        s.add(Attempt(question_id=10_000_000, checkpoint_id=1, mode="full"))
    store.dispose()


def test_sqlite_opens_with_wal_foreign_keys_and_busy_timeout(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    store.dispose()


def test_schema_matches_the_migrations(db_url: str) -> None:
    """The tables Alembic creates are the tables the ORM declares (no drift between the two)."""
    store = open_store(db_url)
    insp = inspect(store.engine)
    for table in Base.metadata.sorted_tables:
        db_cols = {c["name"] for c in insp.get_columns(table.name)}
        assert db_cols == set(table.columns.keys()), table.name
        db_indexes = {i["name"] for i in insp.get_indexes(table.name)}
        assert {i.name for i in table.indexes} <= db_indexes, table.name
    assert current_revision(store.engine) == head_revision()
    store.dispose()


def test_migrations_upgrade_a_store_created_by_the_first_migration(db_url: str) -> None:
    _, engine = create_store_engine(db_url)
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    with engine.begin() as conn:
        assert "owner" not in {c["name"] for c in inspect(conn).get_columns("runs")}
        conn.execute(
            text(
                "INSERT INTO runs (name, config, status, created_at) VALUES ('old', '{}', 'finished', "
                "CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO videos (path, status, created_at, updated_at) VALUES ('/v.mp4', 'ok', "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO questions (run_id, video_id, split, family, level, writer, text, answer, "
                "evidence, spec, status, created_at) VALUES (1, 1, 'train', 'grounding', 2, 'template', "
                "'when?', '[1, 2]', '[[1.0, 2.0]]', '{}', 'accepted', CURRENT_TIMESTAMP)"
            )
        )
    engine.dispose()
    store = open_store(db_url)  # applies the remaining migrations on open
    assert current_revision(store.engine) == head_revision()
    with store.session() as s:
        run = s.scalars(select(Run)).one()
        assert (run.name, run.status, run.owner) == ("old", "finished", None)
        run.owner = "host:1"
        q = s.scalars(select(Question)).one()
        assert (q.text, q.level, q.evidence) == ("when?", 2, [[1.0, 2.0]])
    with store.session() as s:
        assert s.scalars(select(Run.owner)).one() == "host:1"
    store.dispose()


def _write_questions(url: str, worker: int, n: int) -> None:
    store = open_store(url)
    with store.session() as s:
        run_id = s.scalar(select(Run.id).where(Run.name == "demo"))
        video_id = s.scalar(select(Video.id).order_by(Video.id))
    for i in range(n):
        with store.write() as s:
            s.add(
                Question(
                    run_id=run_id, video_id=video_id, family="ordering", text=f"w{worker} q{i}", answer="A"
                )
            )
            s.flush()
            assert (
                s.scalar(select(func.count()).select_from(Question).where(Question.text == f"w{worker} q{i}"))
                == 1
            )
    store.dispose()


def test_two_processes_writing_at_once_lose_nothing(db_url: str) -> None:
    store = open_store(db_url)
    populate(store)
    with store.session() as s:
        before = s.scalar(select(func.count(Question.id)))
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_write_questions, args=(db_url, w, 150)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    with store.session() as s:
        assert s.scalar(select(func.count(Question.id))) == before + 300
        texts = set(
            s.scalars(select(Question.text).where(Question.family == "ordering", Question.text.like("w%")))
        )
        assert texts == {f"w{w} q{i}" for w in range(2) for i in range(150)}
    store.dispose()


@pytest.mark.parametrize(
    "needle",
    [
        "50%",
        "'red'",
        "; then say DROP TABLE questions; --",
        "dog_bark",
        "_",
        "%",
        "Robert'); DELETE FROM questions WHERE ('1'='1",
        "' OR '1'='1",
    ],
)
def test_hostile_filters_match_literally_and_harm_nothing(db_url: str, needle: str) -> None:
    store = open_store(db_url)
    populate(store)
    with store.session() as s:
        for field in ("text", "video", "family", "run"):
            flt = QuestionFilter(**{field: needle})
            if field == "run":
                with pytest.raises(StoreError, match="No run named"):
                    list_questions(s, flt)
                continue
            rows = list_questions(s, flt, limit=None)
            haystacks = HOSTILE_TEXTS if field == "text" else [f"/data/clip_{i % 3}.mp4" for i in range(5)]
            haystacks = (
                haystacks
                if field != "family"
                else ["grounding", "ordering", "arrow_of_time", "grounding", "counting"]
            )
            expected = [
                t
                for t, h in zip(HOSTILE_TEXTS, haystacks, strict=True)
                if (needle.lower() in h.lower() if field != "family" else needle == h)
            ]
            assert sorted(r["text"] for r in rows) == sorted(expected), (field, needle)
        assert count_questions(s, QuestionFilter()) == len(HOSTILE_TEXTS)
    store.dispose()


def test_queries_filter_and_aggregate(db_url: str) -> None:
    store = open_store(db_url)
    ids = populate(store)
    with store.session() as s:
        assert count_questions(s, QuestionFilter(run="demo", status="accepted")) == 3
        assert count_questions(s, QuestionFilter(round=1)) == 2
        assert count_questions(s, QuestionFilter(family="grounding", level_min=1, level_max=2)) == 0
        assert count_questions(s, QuestionFilter(level_min=1, level_max=1)) == 2
        assert count_questions(s, QuestionFilter(video="CLIP_1")) == 2
        assert [r["id"] for r in list_questions(s, QuestionFilter(), limit=2)] == sorted(
            [r["id"] for r in list_questions(s, QuestionFilter(), limit=None)], reverse=True
        )[:2]
        with pytest.raises(StoreError, match="Unknown status 'maybe'"):
            list_questions(s, QuestionFilter(status="maybe"))
        with pytest.raises(StoreError, match="empty"):
            list_questions(s, QuestionFilter(level_min=3, level_max=1))
        detail = question_detail(s, ids["question"])
        by_mode = {a["mode"]: a for a in detail["attempt_summary"]}
        assert by_mode["full"]["n"] == 4 and by_mode["full"]["accuracy"] == pytest.approx(0.75)
        assert by_mode["blind"]["accuracy"] == pytest.approx(0.25)
        with pytest.raises(StoreError, match="No question with id 999999"):
            question_detail(s, 999999)
        stats = {(r.round, r.family): r for r in question_stats(s, QuestionFilter(run="demo"))}
        g0 = stats[(0, "grounding")]
        assert (g0.generated, g0.accepted, g0.rejected) == (1, 1, 0)
        assert stats[(1, "grounding")].reject_reasons == {"blind_answerable": 1}
        assert g0.accuracy_by_mode == {"blind": 0.25, "full": 0.75}
    store.dispose()


def test_open_errors_are_one_sentence(tmp_path) -> None:
    cases = {
        "not a url": "is not a database URL",
        f"sqlite:///{tmp_path}/missing/store.db": "No store at",
        "postgresql+psycopg://nobody@127.0.0.1:1/none": "Cannot connect to the database",
        "mysql://u@h/db": "driver",
    }
    for url, message in cases.items():
        with pytest.raises(StoreError, match=message) as err:
            open_store(url, create=False)
        assert "\n" not in str(err.value)
    bogus = tmp_path / "bogus.db"
    bogus.write_text("this is not sqlite " * 100)
    with pytest.raises(StoreError, match="Cannot open the SQLite store"):
        open_store(f"sqlite:///{bogus}")
    assert bogus.read_text().startswith("this is not sqlite")
