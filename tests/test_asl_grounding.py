"""The ASL grounding benchmark built from the real sign clips: exact timestamps, right content, scoring."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from videozero.errors import VideozeroError
from videozero.evaluation.asl_grounding import (
    AslBuildConfig,
    build_asl_grounding,
    load_items,
    main,
    plan_videos,
    query_clip,
)
from videozero.evaluation.benchmarks import Prediction, load_benchmark, resolve_videos, score
from videozero.video.decode import SamplingConfig, decode_video

CLIPS = Path(__file__).resolve().parents[1].parent / "shared" / "videos" / "real" / "asl_gestures"
pytestmark = pytest.mark.skipif(
    not CLIPS.is_dir(),
    reason="../shared/videos/real/asl_gestures (the real sign clips) is absent in this checkout",
)
FPS = 30


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("asl")
    return build_asl_grounding(out, CLIPS, AslBuildConfig(n_videos=2, clips_per_video=4, seed=3, fps=FPS))


def test_items_pair_videos_and_keep_query_apart(built) -> None:
    items = built.items
    assert len(items) == 8 and {i.video_id for i in items} == {"asl_000", "asl_001"}
    manifest = json.loads((built.items_path.parent / "manifest.json").read_text())
    signs = [v["signs"] for v in manifest["videos"]]
    assert sorted(signs[0]) == sorted(signs[1]) and signs[0] != signs[1] and len(set(signs[0])) == 4
    for item in items:
        assert item.extra["query_video"] != item.video_id
        (s, e), (qs, qe) = item.gt_spans[0], item.extra["query_span"]
        assert e <= qs or qe <= s  # the query clip's own times never overlap the answer
        assert e - s == pytest.approx(qe - qs)  # the same recording
        assert item.extra["sign"] in item.question and item.video_path == str(
            built.videos_dir / f"{item.video_id}.mp4"
        )
    assert load_benchmark("asl_grounding", built.items_path).items == items


def test_spans_are_exact_in_the_container(built) -> None:
    import av

    manifest = json.loads((built.items_path.parent / "manifest.json").read_text())
    for video in manifest["videos"]:
        path = built.videos_dir / f"{video['video_id']}.mp4"
        with av.open(str(path)) as container:
            times = [float(f.time) for f in container.decode(container.streams.video[0])]
        assert len(times) == video["n_frames"]
        assert times == pytest.approx([i / FPS for i in range(video["n_frames"])], abs=1e-9)
        spans = sorted(i.gt_spans[0] for i in built.items if i.video_id == video["video_id"])
        assert spans[0][0] == 0.0 and spans[-1][1] == pytest.approx(video["n_frames"] / FPS)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))  # back to back, no gap
        clip = decode_video(path, SamplingConfig(fps=FPS, max_frames=4096, short_side=240))
        assert clip.frame_count == video["n_frames"] and clip.duration_s == pytest.approx(
            video["n_frames"] / FPS
        )
        assert clip.timestamps == pytest.approx(clip.indices / FPS, abs=1e-4)


def test_ground_truth_spans_show_the_query_sign(built) -> None:
    sampling = SamplingConfig(fps=FPS, max_frames=4096, short_side=112)
    videos = {v: decode_video(built.videos_dir / f"{v}.mp4", sampling) for v in ("asl_000", "asl_001")}
    queries = {i.item_id: query_clip(i, sampling) for i in built.items}
    for item in built.items:
        clip, (s, e) = videos[item.video_id], item.gt_spans[0]
        inside = clip.frames[(clip.timestamps >= s - 1e-6) & (clip.timestamps < e - 1e-6)]
        query = queries[item.item_id]
        assert query.timestamps[0] == pytest.approx(0.0, abs=1e-4) and query.duration_s == pytest.approx(
            e - s
        )
        n = min(len(inside), len(query))
        assert n >= len(query) - 1  # the last frame of a video may fall outside the sampling grid
        same = np.abs(inside[:n].astype(int) - query.frames[:n].astype(int)).mean()
        assert same < 3.0  # the same recording, encoded twice
        other = next(queries[o.item_id] for o in built.items if o.extra["sign"] != item.extra["sign"])
        m = min(n, len(other))
        assert np.abs(inside[:m].astype(int) - other.frames[:m].astype(int)).mean() > 10 * max(same, 0.5)


def test_scoring_perfect_shifted_and_echoed_predictions(built) -> None:
    items = resolve_videos(built.items, built.videos_dir).found
    assert len(items) == 8
    perfect = {i.item_id: Prediction(answer=i.extra["sign"], spans=i.gt_spans) for i in items}
    f = score("asl_grounding", items, perfect)
    assert (f["R1@0.3"], f["R1@0.5"], f["R1@0.7"], f["mIoU"]) == (1.0, 1.0, 1.0, 1.0)
    # shifted by a quarter of its length: IoU (3/4) / (5/4) = 0.6
    shifted = {}
    for i in items:
        s, e = i.gt_spans[0]
        shifted[i.item_id] = Prediction(spans=((s + (e - s) / 4, e + (e - s) / 4),))
    f = score("asl_grounding", items, shifted)
    assert (f["R1@0.5"], f["R1@0.7"], f["mIoU"]) == (1.0, 0.0, pytest.approx(0.6))
    echoed = {i.item_id: Prediction(spans=(tuple(i.extra["query_span"]),)) for i in items}
    assert score("asl_grounding", items, echoed)["mIoU"] == 0.0


def test_plan_is_seeded() -> None:
    frames = {s: 50 + 7 * i for i, s in enumerate("abcdefghij")}
    assert plan_videos(frames, 5, 4, seed=1) == plan_videos(frames, 5, 4, seed=1)
    assert plan_videos(frames, 5, 4, seed=1)[0] != plan_videos(frames, 5, 4, seed=2)[0]
    orders, partner = plan_videos(frames, 5, 4, seed=1)
    assert partner == [1, 0, 3, 2, 0] and sorted(orders[4]) == sorted(orders[0]) and orders[4] != orders[1]
    with pytest.raises(VideozeroError, match="at least 2 videos"):
        plan_videos(frames, 1, 4, seed=0)
    with pytest.raises(VideozeroError, match="only 10 signs exist"):
        plan_videos(frames, 2, 11, seed=0)


def test_cli_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "b"), "--clips", str(tmp_path / "none")]) == 1
    assert "is not a folder" in capsys.readouterr().err
    with pytest.raises(VideozeroError, match="inside the repository"):
        build_asl_grounding(Path(__file__).resolve().parent / "asl_out", CLIPS)
    bad = tmp_path / "items.jsonl"
    bad.write_text('{"item_id": "x"}\n')
    with pytest.raises(VideozeroError, match=r"items\.jsonl, line 1: not an ASL grounding item"):
        load_items(bad)
