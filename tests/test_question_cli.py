"""`videozero question` on a real clip with the real tiny model, and its errors for bad input."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from store import open_store
from store.tables import Question, Video
from tests.cli import assert_one_sentence_error, videozero
from tests.model_builds import REAL_VIDEOS, tiny_qwen_dir
from videozero.questioner.round_config import FAMILIES

CLIP = REAL_VIDEOS / "testvideo.mp4"


@pytest.mark.slow
@pytest.mark.skipif(not CLIP.exists(), reason=f"{CLIP} is not present (../shared/videos/real)")
def test_question_on_a_real_clip_stores_every_family_and_qa_show_displays_them(tmp_path):
    db = f"sqlite:///{tmp_path / 'store.db'}"
    common = ["--db", db, "--workdir", str(tmp_path), "--model", str(tiny_qwen_dir())]
    proc = videozero(
        "question", "--run", "real", "--videos", str(CLIP), "--writer", "both", "--per-video", "12",
        "--n-full", "2", "--n-probe", "1", "--max-frames", "8", *common,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "questions" in proc.stdout and "proposed" in proc.stdout
    store = open_store(db, create=False)
    with store.session() as s:
        duration = s.scalar(select(Video.duration_s))
        qs = s.scalars(select(Question)).all()
    templates = [q for q in qs if q.writer == "template"]
    written = [q for q in qs if q.writer == "model"]
    assert {q.family for q in templates} == set(FAMILIES)
    for q in templates:
        assert q.evidence and all(0 <= s < e <= duration + 1e-6 for s, e in q.evidence)
        assert q.status in ("accepted", "rejected")
        if q.reject_reason != "duplicate":
            assert (
                q.r_learn is not None and q.r_dep is not None and q.r_evid is not None and q.r_q is not None
            )
            assert set(q.verification["scores"]) >= {"full", "blind"}
    # every model write is stored, rejected ones with their reason and raw output
    assert written and all(q.status in ("accepted", "rejected", "candidate") for q in written)
    assert all(q.reject_reason and "raw_output" in q.spec for q in written if q.status == "rejected")

    verified = next(q for q in templates if q.verification and q.spec.get("query"))
    show = videozero("qa", "show", str(verified.id), "--db", db)
    assert show.returncode == 0, show.stderr
    out = " ".join(show.stdout.split())
    assert verified.text.split()[0] in out and "r_Q" in out and "blind" in out and "@" in out
    as_json = json.loads(videozero("qa", "show", str(verified.id), "--db", db, "--format", "json").stdout)
    assert as_json["verification"]["scores"]["full"] == verified.verification["scores"]["full"]

    # the same round again adds nothing
    again = videozero(
        "question", "--run", "real", "--n-full", "2", "--n-probe", "1", "--max-frames", "8", *common
    )
    assert again.returncode == 0, again.stderr
    with store.session() as s:
        assert len(s.scalars(select(Question.id)).all()) == len(qs)
    store.dispose()


def test_question_bad_input_gets_one_sentence(tmp_path):
    db = f"sqlite:///{tmp_path / 'store.db'}"
    missing = videozero("question", "--run", "nope", "--db", db, "--workdir", str(tmp_path))
    assert_one_sentence_error(missing, "store")
    assert_one_sentence_error(
        videozero(
            "question", "--run", "r", "--families", "grounding,colour", "--db", db, "--workdir", str(tmp_path)
        ),
        "unknown question family 'colour'",
    )
    assert_one_sentence_error(
        videozero("question", "--run", "r", "--videos", str(tmp_path / "nothing.mp4"), "--db", db),
        "none of the inputs exist",
    )
