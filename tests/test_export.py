"""`videozero qa export`: each trainer's row shape, field by field, in JSONL and Parquet."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from store import Question, open_store
from tests.cli import assert_one_sentence_error, videozero
from tests.sample_store import HOSTILE_TEXTS, populate
from videozero.export import training_label


@pytest.fixture
def populated(sqlite_url: str) -> str:
    store = open_store(sqlite_url)
    populate(store)
    with store.session() as s:
        q = s.get(Question, 2)  # a model-written, accepted multiple-choice question
        q.consensus_answer, q.consensus_evidence = "B", [[1.5, 2.5]]
    store.dispose()
    return sqlite_url


def _export(db: str, tmp_path: Path, shape: str, suffix: str = ".jsonl", *extra: str) -> list[dict]:
    out = tmp_path / f"{shape}{suffix}"
    proc = videozero("qa", "export", "--db", db, "--shape", shape, "-o", str(out), *extra)
    assert proc.returncode == 0, proc.stderr
    if suffix == ".parquet":
        return pq.read_table(out).to_pylist()
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_openrlhf_rows(populated: str, tmp_path: Path) -> None:
    rows = _export(populated, tmp_path, "openrlhf")
    assert len(rows) == 3  # accepted training questions only, oldest first
    first = rows[0]
    assert set(first) == {"prompt", "label", "video", "images"} and first["images"] == []
    video_part, text_part = first["prompt"][0]["content"]
    assert first["prompt"][0]["role"] == "user" and video_part == {
        "type": "video",
        "video": "/data/clip_0.mp4",
    }
    assert text_part["text"].startswith(HOSTILE_TEXTS[0].replace("<video>", "[video]"))
    assert "</evidence><answer>" in text_part["text"]  # the format instruction
    label = json.loads(first["label"])
    assert label == {
        "question_id": 1,
        "family": "grounding",
        "answer": "[1.0, 2.0]",
        "evidence": [[1.0, 2.0]],
        "answer_kind": "text",
        "options": None,
        "duration": 10.0,  # the video's, so alignment is clamped to it as in the loop
    }
    second = json.loads(rows[1]["label"])
    assert (second["answer"], second["evidence"], second["answer_kind"]) == ("B", [[1.5, 2.5]], "option")
    assert "A. first\nB. second" in rows[1]["prompt"][0]["content"][-1]["text"]
    assert rows[0]["video"] == "/data/clip_0.mp4"


def test_verl_and_easyr1_rows(populated: str, tmp_path: Path) -> None:
    verl = _export(populated, tmp_path, "verl", ".parquet")
    assert set(verl[0]) == {
        "data_source",
        "prompt",
        "images",
        "videos",
        "ability",
        "reward_model",
        "extra_info",
    }
    assert verl[0]["data_source"] == "videozero/grounding"
    assert verl[0]["prompt"][0]["content"].startswith(
        "<video>\n" + HOSTILE_TEXTS[0].replace("<video>", "[video]")
    )
    assert verl[0]["videos"] == [{"video": "/data/clip_0.mp4", "fps": 2.0, "max_frames": 32}]
    assert verl[0]["images"] == []
    assert verl[0]["reward_model"]["style"] == "rule"
    assert json.loads(verl[0]["reward_model"]["ground_truth"])["evidence"] == [[1.0, 2.0]]
    assert verl[0]["extra_info"] == {"question_id": 1, "split": "train", "level": 0}
    easy = _export(populated, tmp_path, "easyr1")
    assert set(easy[0]) == {"problem", "answer", "images", "videos"} and easy[0]["videos"] == [
        "/data/clip_0.mp4"
    ]
    assert easy[0]["problem"] == verl[0]["prompt"][0]["content"]


def test_trl_rows_and_label_modes(populated: str, tmp_path: Path) -> None:
    rows = _export(populated, tmp_path, "trl", ".jsonl", "--label", "constructed")
    content = rows[1]["prompt"][0]["content"]
    assert content[0] == {"type": "video", "path": "/data/clip_1.mp4"} and content[1]["type"] == "text"
    assert rows[1]["completion"] == [
        {"role": "assistant", "content": "<think></think><evidence>[1.0, 2.0]</evidence><answer>A</answer>"}
    ]
    assert (rows[1]["solution"], rows[1]["evidence"]) == ("A", [[1.0, 2.0]])
    consensus = _export(populated, tmp_path, "trl", ".parquet", "--label", "consensus")
    assert consensus[1]["solution"] == "B" and consensus[1]["evidence"] == [[1.5, 2.5]]
    # Questions without a consensus keep their constructed label.
    assert consensus[0]["solution"] == "[1.0, 2.0]"


def test_label_rule() -> None:
    row = {
        "writer": "model",
        "answer": "A",
        "evidence": [[0, 1]],
        "consensus_answer": "C",
        "consensus_evidence": [[2, 3]],
    }
    assert training_label(row) == ("C", [[2, 3]])
    assert training_label({**row, "writer": "template"}) == ("A", [[0, 1]])
    assert training_label({**row, "consensus_answer": None}) == ("A", [[0, 1]])


def test_export_errors_leave_nothing_behind(populated: str, tmp_path: Path) -> None:
    bad = tmp_path / "out.csv"
    assert_one_sentence_error(
        videozero("qa", "export", "--db", populated, "-o", str(bad)), "name the file .jsonl or .parquet"
    )
    assert not bad.exists() and not list(tmp_path.glob(".out*"))
    assert_one_sentence_error(
        videozero("qa", "export", "--db", populated, "-o", str(tmp_path / "x.jsonl"), "--shape", "alpaca"),
        "Invalid value for '--shape'",
    )


def test_verl_and_trl_rewards_on_exported_rows_equal_the_loops(populated: str, tmp_path: Path) -> None:
    """The rows as verl and TRL get them, scored by their adapters, give the loop's own reward."""
    from videozero.rewards import RewardWeights
    from videozero.scoring import Label, score_completion
    from videozero.solver.external_rewards import compute_score, trl_reward, trl_reward_with

    verl = _export(populated, tmp_path, "verl", ".parquet")
    trl = _export(populated, tmp_path, "trl", ".jsonl")
    assert [r["extra_info"]["question_id"] for r in verl] == [r["question_id"] for r in trl]
    for v, t in zip(verl, trl, strict=True):
        label = json.loads(v["reward_model"]["ground_truth"])
        assert (t["solution"], t["evidence"], t["answer_kind"]) == (
            label["answer"],
            label["evidence"],
            label["answer_kind"],
        )
        right = t["completion"][0]["content"]  # the training target itself: full marks
        wrong = "<think></think><evidence>[0.0, 0.1]</evidence><answer>zzz</answer>"
        for text in (right, wrong, "no format at all"):
            loop = score_completion(text, Label.from_export(label)).reward
            got = compute_score(v["data_source"], text, v["reward_model"]["ground_truth"], v["extra_info"])
            assert got["score"] == pytest.approx(loop.total)
            assert (got["accuracy"], got["alignment"]) == pytest.approx((loop.accuracy, loop.alignment))
            completion = [{"role": "assistant", "content": text}]
            kwargs = {"evidence": [t["evidence"]], "answer_kind": [t["answer_kind"]]}
            assert trl_reward([completion], [t["solution"]], **kwargs) == pytest.approx([loop.total])
        assert compute_score(v["data_source"], right, label)["accuracy"] == 1.0
    # TRL's reward at other weights; a ground truth that is not a label is refused in one sentence
    no_alignment = trl_reward_with(RewardWeights(w_fmt=0.0, alpha=0.0))
    first = trl[0]
    kinds = {"answer_kind": [first["answer_kind"]]}
    assert no_alignment([first["completion"][0]["content"]], [first["solution"]], **kinds) == [1.0]
    with pytest.raises(Exception, match="not a label `videozero qa export` writes"):
        compute_score("videozero/grounding", "B", "not json")


def test_placeholders_in_question_text_are_not_counted_as_media() -> None:
    """A model-written question that says `<image>` or `<video>` cannot shift verl's or EasyR1's
    matching of placeholders to media: only the export's own placeholders remain."""
    from videozero.export import to_shape

    row = {
        "id": 7,
        "family": "grounding",
        "level": 0,
        "video": "/v.mp4",
        "text": "Which <image> matches the <VIDEO> at <audio>?",
        "options": ["<image>", "b"],
        "answer": "A",
        "evidence": [[1, 2]],
        "spec": {},
    }
    verl = to_shape(row, "verl", images=[("Query", "/m/q.png")])
    text = verl["prompt"][0]["content"]
    assert text.count("<image>") == 1 and text.count("<video>") == 1 and "<audio>" not in text
    assert "Which [image] matches the [VIDEO] at [audio]?" in text and "A. [image]" in text
    assert verl["images"] == [{"image": "/m/q.png"}]
    assert to_shape(row, "easyr1", images=[("Query", "/m/q.png")])["problem"] == text
