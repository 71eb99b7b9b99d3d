"""Benchmark readers on the real annotation files, scored with predictions checked by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from videozero.errors import VideozeroError
from videozero.evaluation.benchmarks import (
    BENCHMARKS,
    GroundingItem,
    Prediction,
    default_annotations,
    load_benchmark,
    resolve_videos,
    score,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
BENCH = SHARED / "benchmarks"
needs_shared = pytest.mark.skipif(
    not BENCH.is_dir(), reason="../shared/benchmarks (the real annotation files) is absent in this checkout"
)


def _load(name: str) -> dict[str, GroundingItem]:
    return {i.item_id: i for i in load_benchmark(name, default_annotations(name, BENCH)).items}


def _perfect(items: list[GroundingItem]) -> dict[str, Prediction]:
    return {i.item_id: Prediction(answer=i.answer, spans=i.gt_spans) for i in items}


@needs_shared
@pytest.mark.parametrize("name", [n for n in BENCHMARKS if n != "asl_grounding"])
def test_every_benchmark_reads_and_perfect_predictions_score_one(name: str) -> None:
    bench = load_benchmark(name, default_annotations(name, BENCH))
    items = bench.items
    assert len(items) > 1000 and len({i.item_id for i in items}) == len(items)
    if name == "qvhighlights":  # the official mAP reads at most 10 windows per query
        items = [i for i in items if len(i.gt_spans) <= 10]
    figures = score(name, items, _perfect(items))
    assert figures.pop("n") == len(items)
    assert figures == {k: pytest.approx(1.0) for k in figures}


@needs_shared
def test_charades_sta_rows_and_shifted_spans() -> None:
    bench = load_benchmark("charades_sta", BENCH / "charades_sta/charades_sta_train.txt")
    first = bench.items[0]  # line 1: "AO8RW 0.0 6.9##a person is putting a book on a shelf."
    assert (first.item_id, first.video_id, first.gt_spans) == ("AO8RW_1", "AO8RW", ((0.0, 6.9),))
    assert first.query == "a person is putting a book on a shelf." and first.duration is None
    assert bench.notes == ["4 rows with start >= end left out (as 2D-TAN's loader)"]
    assert not any(i.video_id == "LEOL6" and i.gt_spans == ((8.0, 7.0),) for i in bench.items)
    items = bench.items[:3]  # AO8RW 0.0-6.9, Y6R7T 20.8-30.0 (twice)
    preds = {
        "AO8RW_1": Prediction(spans=((1.0, 7.9),)),  # inter 5.9, union 7.9: IoU 0.7468
        "Y6R7T_2": Prediction(spans=((25.4, 34.6),)),  # shifted by half its 9.2 s: IoU 4.6 / 13.8 = 1/3
        "Y6R7T_3": Prediction(spans=((30.0, 35.0),)),  # touches the end: IoU 0
    }
    f = score("charades_sta", items, preds)
    assert (f["R1@0.3"], f["R1@0.5"], f["R1@0.7"]) == pytest.approx((2 / 3, 1 / 3, 1 / 3))
    assert f["mIoU"] == pytest.approx((5.9 / 7.9 + 1 / 3 + 0) / 3)


@needs_shared
def test_activitynet_captions_rows() -> None:
    items = _load("activitynet_captions")
    a, b = items["v_uqiMw7tQ1Cc_0"], items["v_uqiMw7tQ1Cc_1"]
    assert a.gt_spans == ((0.28, 55.15),) and b.gt_spans == ((13.79, 54.32),) and a.duration == 55.15
    assert a.query == "A weight lifting tutorial is given."
    # predicting sentence 0's span for sentence 1: inter 40.53, union 54.87 -> 0.7387
    f = score(
        "activitynet_captions",
        [a, b],
        {a.item_id: Prediction(spans=a.gt_spans), b.item_id: Prediction(spans=a.gt_spans)},
    )
    assert f["R1@0.7"] == 1.0 and f["mIoU"] == pytest.approx((1 + 40.53 / 54.87) / 2)


@needs_shared
def test_qvhighlights_rows() -> None:
    items = _load("qvhighlights")
    one, two = items["2579"], items["5342"]  # windows [[82, 150]] and [[56, 76], [96, 150]]
    assert one.gt_spans == ((82.0, 150.0),) and two.gt_spans == ((56.0, 76.0), (96.0, 150.0))
    assert one.video_id == "NUsG9BgSes0_210.0_360.0" and one.duration == 150.0
    assert len(one.extra["saliency_scores"]) == len(one.extra["relevant_clip_ids"]) == 34
    # shifted by 10 s: IoU 58/78 = 0.744 -> hit at 0.5..0.7, AP 1 at 5 of 10 thresholds
    f = score("qvhighlights", [one], {"2579": Prediction(spans=((92.0, 160.0),))})
    assert (f["R1@0.5"], f["R1@0.7"], f["mAP"], f["mAP@0.75"]) == pytest.approx((1.0, 1.0, 0.5, 0.0))
    # one of two windows found exactly: precision 1 at recall 1/2 -> AP 0.5; R1 matches the best window
    f = score("qvhighlights", [two], {"5342": Prediction(spans=((56.0, 76.0),))})
    assert (f["R1@0.7"], f["mAP"]) == pytest.approx((1.0, 0.5))
    # both, best-scored second: R1 reads the first window (exact), mAP ranks by score (both exact)
    f = score(
        "qvhighlights", [two], {"5342": Prediction(spans=((96.0, 150.0), (56.0, 76.0)), scores=(0.2, 0.9))}
    )
    assert (f["R1@0.7"], f["mAP"]) == pytest.approx((1.0, 1.0))


@needs_shared
def test_nextgqa_rows() -> None:
    items = _load("nextgqa")
    q = items["4882821564_1"]  # "why did the boy pick up one present ...", answer "unwrap it" = a2
    assert q.options is not None and q.options[2] == "unwrap it" and q.answer == "C"
    assert q.gt_spans == ((13.8, 29.8),) and q.duration == 90.0 and q.extra["type"] == "CW"
    assert "C. unwrap it" in q.prompt() and q.answer_kind == "option"
    multi = items["10001787725_3"]  # windows [12.1, 17.1], [20.0, 23.5], [29.7, 33.2]
    assert len(multi.gt_spans) == 3
    preds = {
        q.item_id: Prediction(answer="C", spans=((13.8, 21.8),)),  # IoP 1, IoU 8/16 = 0.5
        multi.item_id: Prediction(answer="(b)", spans=((12.1, 23.5),)),  # IoU = IoP = 5/11.4 = 0.4386
    }
    f = score("nextgqa", [q, multi], preds)
    assert f["Acc@QA"] == 0.5  # multi's answer is not B
    assert f["Acc@GQA"] == 0.5
    assert f["mIoP"] == pytest.approx((1 + 5 / 11.4) / 2) and f["IoP@0.5"] == 0.5 and f["IoP@0.3"] == 1.0
    assert f["mIoU"] == pytest.approx((0.5 + 5 / 11.4) / 2) and f["IoU@0.5"] == 0.5 and f["IoU@0.3"] == 1.0


@needs_shared
def test_missing_predictions_count_as_wrong() -> None:
    items = list(_load("charades_sta").values())[:4]
    f = score("charades_sta", items, {items[0].item_id: Prediction(spans=items[0].gt_spans)})
    assert f["R1@0.3"] == 0.25 and f["format_rate"] == 0.25


def test_prediction_from_model_output() -> None:
    p = Prediction.from_output("<think>hands up</think><evidence>[3.0, 5.5]</evidence><answer>B</answer>")
    assert p == Prediction(answer="B", spans=((3.0, 5.5),), format_ok=True)
    bad = Prediction.from_output("the answer is B")
    assert not bad.format_ok and bad.spans == ()


def test_malformed_lines_name_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "charades.txt"
    f.write_text("AO8RW 0.0 6.9##a person.\nAO8RW zero 6.9##a person.\n")
    with pytest.raises(
        VideozeroError, match=r"charades\.txt, line 2: expected 'VIDEO_ID START END##sentence'"
    ):
        load_benchmark("charades_sta", f)
    j = tmp_path / "qvh.jsonl"
    j.write_text(
        '{"qid": 1, "query": "q", "vid": "v", "duration": 10, "relevant_windows": [[0, 2]]}\n{"qid": 2,\n'
    )
    with pytest.raises(VideozeroError, match=r"qvh\.jsonl, line 2: invalid JSON"):
        load_benchmark("qvhighlights", j)
    j.write_text('{"qid": 1, "query": "q", "vid": "v", "duration": 10}\n')
    with pytest.raises(VideozeroError, match=r"line 1: no relevant_windows \(the test split"):
        load_benchmark("qvhighlights", j)
    a = tmp_path / "anet.json"
    a.write_text('{"v_x": {"duration": 10, "timestamps": [[0, 1]], "sentences": []}}')
    with pytest.raises(VideozeroError, match=r"anet\.json, video 'v_x'"):
        load_benchmark("activitynet_captions", a)
    (tmp_path / "val.csv").write_text("video_id,question,answer,qid,a0,a1,a2,a3,a4\n1,q?,zz,1,a,b,c,d,e\n")
    (tmp_path / "gsub_val.json").write_text('{"1": {"duration": 5, "location": {"1": [[0, 1]]}}}')
    with pytest.raises(VideozeroError, match=r"val\.csv, line 2: the answer 'zz' is none of the options"):
        load_benchmark("nextgqa", tmp_path / "gsub_val.json")
    with pytest.raises(VideozeroError, match="does not exist"):
        load_benchmark("charades_sta", tmp_path / "nope.txt")
    with pytest.raises(VideozeroError, match="unknown benchmark 'mvbench'"):
        load_benchmark("mvbench", f)


def test_resolve_videos_reports_missing_and_finds_nested_files(tmp_path: Path) -> None:
    items = [
        GroundingItem("charades_sta", "AO8RW_1", "AO8RW", "q", ((0.0, 1.0),)),
        GroundingItem("charades_sta", "Y6R7T_2", "Y6R7T", "q", ((0.0, 1.0),)),
        GroundingItem("charades_sta", "Y6R7T_3", "Y6R7T", "q", ((0.0, 1.0),)),
        GroundingItem("activitynet_captions", "v_abc_0", "v_abc", "q", ((0.0, 1.0),)),
        GroundingItem("charades_sta", "ZZZZZ_9", "ZZZZZ", "q", ((0.0, 1.0),)),
    ]
    (tmp_path / "AO8RW.mp4").write_bytes(b"x")
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "sub" / "deeper" / "Y6R7T.MKV").write_bytes(b"x")
    (tmp_path / "abc.webm").write_bytes(b"x")  # ActivityNet id without its v_ prefix
    (tmp_path / "ZZZZZ.txt").write_bytes(b"x")  # not a video extension
    r = resolve_videos(items, tmp_path)
    assert [i.item_id for i in r.found] == ["AO8RW_1", "Y6R7T_2", "Y6R7T_3", "v_abc_0"]
    assert r.found[1].video_path == str(tmp_path / "sub" / "deeper" / "Y6R7T.MKV")
    assert r.missing_video_ids == ["ZZZZZ"] and r.skipped_item_ids == ["ZZZZZ_9"]
    assert r.summary == f"1 of 4 videos not found in {tmp_path} (1 of 5 items skipped), e.g. ZZZZZ"
    with pytest.raises(VideozeroError, match="is not a folder"):
        resolve_videos(items, tmp_path / "missing")
