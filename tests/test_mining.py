"""Evidence mining on generated clips whose cuts and events are known, and on every kind of bad input."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from sqlalchemy import func, select

from store import Segment, Video, open_store
from store.videos import video_segments
from tests.cli import assert_one_sentence_error, videozero
from videozero.evidence.features import compute_features, decode_with_features
from videozero.evidence.mine import load_evidence
from videozero.evidence.shots import content_scores
from videozero.stages.mine import mine_videos
from videozero.video.decode import SamplingConfig, decode_video
from videozero.video.samples import generated_specs
from videozero.video.synthetic import ClipSpec, ClipTruth, EventSpec, ShotSpec, write_clip

SAMPLING = SamplingConfig(fps=4.0, max_frames=256, short_side=120)
# The generated clips these tests were written against (cuts and events a 4 fps sampling can see).
CLIPS = ("demo_3shots.mp4", "one_shot_two_events.mp4")


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ClipTruth]:
    folder = tmp_path_factory.mktemp("clips")
    specs = generated_specs()
    return {name: write_clip(specs[name], folder / name) for name in CLIPS}


@pytest.fixture(scope="module")
def mined(clips: dict[str, ClipTruth], tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("mined")
    store = open_store(f"sqlite:///{root}/s.db")
    summary = mine_videos(store, [c.path for c in clips.values()], SAMPLING, cache_dir=root / "cache")
    yield store, summary, root
    store.dispose()


def iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


def _video(store, truth: ClipTruth) -> Video:  # type: ignore[no-untyped-def]
    with store.session() as s:
        return s.scalars(select(Video).where(Video.path == str(truth.path))).one()


def test_shots_within_one_sampled_frame(mined, clips: dict[str, ClipTruth]) -> None:  # type: ignore[no-untyped-def]
    store, summary, _ = mined
    assert [r.status for r in summary.results] == ["mined"] * len(clips)
    period = 1.0 / SAMPLING.fps
    for truth in clips.values():
        video = _video(store, truth)
        with store.session() as s:
            shots = sorted(video_segments(s, video.id, SAMPLING.key, "shot"), key=lambda x: x.start_s)
        cuts = [x.start_s for x in shots[1:]]
        assert len(cuts) == len(truth.cuts_s), (cuts, truth.cuts_s)
        for found, true in zip(cuts, truth.cuts_s, strict=True):
            assert abs(found - true) <= period, (found, true)
        assert shots[0].start_s == 0.0 and shots[-1].end_s == pytest.approx(truth.duration_s, abs=period)


def test_top_evidence_covers_the_injected_events(mined, clips: dict[str, ClipTruth]) -> None:  # type: ignore[no-untyped-def]
    store, _, _ = mined
    for truth in clips.values():
        video = _video(store, truth)
        with store.session() as s:
            events = video_segments(s, video.id, SAMPLING.key, "event")
            frames = video_segments(s, video.id, SAMPLING.key, "frame")
            top = events[: len(truth.events)]
            for ev in truth.events:
                best = max(iou((x.start_s, x.end_s), (ev.start_s, ev.end_s)) for x in top)
                assert best >= 0.5, (ev, [(x.start_s, x.end_s) for x in events])
            for seg in top:  # every event has a frame anchor inside it, and parts that add up
                anchors = [f for f in frames if f.parent_id == seg.id]
                assert anchors and all(seg.start_s <= f.start_s == f.end_s <= seg.end_s for f in anchors)
                assert set(seg.saliency_parts) == {"motion", "novelty", "label_change", "spread"}
                assert 0.0 < seg.saliency <= 1.0 and seg.labels and "label" in seg.labels[0]
                assert s.get(Segment, seg.parent_id).level == "shot"


def test_mining_again_adds_nothing_and_features_come_from_the_cache(mined, clips) -> None:  # type: ignore[no-untyped-def]
    store, _, root = mined
    with store.session() as s:
        before = s.scalar(select(func.count(Segment.id)))
    again = mine_videos(store, [c.path for c in clips.values()], SAMPLING, cache_dir=root / "cache")
    assert [r.status for r in again.results] == ["skipped"] * len(clips)
    assert all(r.segments > 0 for r in again.results)
    with store.session() as s:
        assert s.scalar(select(func.count(Segment.id))) == before
        assert s.scalar(select(func.count(Video.id))) == len(clips)
    video = _video(store, clips["demo_3shots.mp4"])
    clip, feats = load_evidence(video.path, video.content_hash, SAMPLING, root / "cache")
    assert len(clip) == len(feats) == 36 and feats.pooled.shape == (36, 1280)


def _zero_length(path: Path) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    return path


def test_each_bad_input_is_recorded_and_the_rest_is_mined(tmp_path: Path, clips) -> None:  # type: ignore[no-untyped-def]
    from tests.test_decode import _huge_clip

    store = open_store(f"sqlite:///{tmp_path}/s.db")
    good = tmp_path / "good.mp4"
    shutil.copy(clips["demo_3shots.mp4"].path, good)
    first = mine_videos(store, [good], SAMPLING, cache_dir=tmp_path / "cache")
    assert first.results[0].status == "mined"
    with store.session() as s:
        kept = [(x.id, x.start_s, x.saliency) for x in s.scalars(select(Segment).order_by(Segment.id))]

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "notes.mp4").write_text("plain text, not a video\n" * 40)
    data = clips["one_shot_two_events.mp4"].path.read_bytes()
    (bad / "truncated.mp4").write_bytes(data[: len(data) // 4])
    (bad / "empty.mp4").touch()
    _zero_length(bad / "zero.mp4")
    _huge_clip(bad / "huge.mp4")
    (tmp_path / "empty_dir").mkdir()
    fresh = tmp_path / "fresh.mp4"
    shutil.copy(clips["one_shot_two_events.mp4"].path, fresh)
    inputs = [bad, tmp_path / "empty_dir", tmp_path / "missing_dir", good, fresh]
    summary = mine_videos(store, inputs, SAMPLING, cache_dir=tmp_path / "cache")

    by_name = {Path(r.path).name: r for r in summary.results}
    expected = {
        "notes.mp4": "not a readable video",
        "truncated.mp4": "truncated or corrupt",
        "empty.mp4": "is empty (0 bytes)",
        "zero.mp4": "holds no video frames",
        "huge.mp4": "megapixel limit",
        "empty_dir": "holds no video files",
        "missing_dir": "does not exist",
    }
    for name, fragment in expected.items():
        result = by_name[name]
        assert (
            result.status == "error" and fragment in (result.error or "") and name in (result.error or "")
        ), result
    assert by_name["good.mp4"].status == "skipped" and by_name["fresh.mp4"].status == "mined"
    with store.session() as s:
        rows = {Path(v.path).name: v for v in s.scalars(select(Video))}
        for name, fragment in expected.items():
            assert rows[name].status == "error" and fragment in (rows[name].error or "")
        assert rows["good.mp4"].status == rows["fresh.mp4"].status == "ok"
        still = [
            (x.id, x.start_s, x.saliency)
            for x in s.scalars(
                select(Segment).where(Segment.video_id == rows["good.mp4"].id).order_by(Segment.id)
            )
        ]
    assert still == kept

    # The same file later corrupted: a new error row; the earlier mining of its old content stays.
    good.write_bytes(good.read_bytes()[:500])
    later = mine_videos(store, [good], SAMPLING, cache_dir=tmp_path / "cache")
    assert later.results[0].status == "error"
    with store.session() as s:
        statuses = sorted(v.status for v in s.scalars(select(Video).where(Video.path == str(good))))
        assert statuses == ["error", "ok"]
        assert s.scalar(select(func.count(Segment.id)).where(Segment.video_id == rows["good.mp4"].id)) == len(
            kept
        )
    store.dispose()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_recorded(tmp_path: Path, clips) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "locked.mp4"
    shutil.copy(clips["demo_3shots.mp4"].path, path)
    path.chmod(0)
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    summary = mine_videos(store, [path], SAMPLING)
    assert "permission denied" in (summary.results[0].error or "")
    store.dispose()


def test_cli_mines_reports_and_fails_in_one_sentence(tmp_path: Path, clips) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "broken.mp4"
    bad.write_text("nope")
    db = f"sqlite:///{tmp_path}/s.db"
    args = ("--db", db, "--workdir", str(tmp_path), "--fps", "2", "--max-frames", "32")
    ok = videozero("mine", "--videos", str(clips["demo_3shots.mp4"].path), "--videos", str(bad), *args)
    assert ok.returncode == 0, ok.stderr
    assert "Traceback" not in ok.stderr
    out = " ".join(ok.stdout.split())
    assert "demo_3shots.mp4" in out and "mined" in out and "broken.mp4" in out and "1 errors" in out
    assert_one_sentence_error(
        videozero("mine", "--videos", str(tmp_path / "nowhere"), *args), "none of the inputs exist"
    )
    assert_one_sentence_error(videozero("mine", "--videos", str(bad), *args), "no video could be mined")


def test_overlapped_decode_and_encode_match_the_plain_path(clips) -> None:  # type: ignore[no-untyped-def]
    path = clips["demo_3shots.mp4"].path
    clip, feats = decode_with_features(path, SAMPLING)
    plain = decode_video(path, SAMPLING)
    np.testing.assert_array_equal(clip.frames, plain.frames)
    np.testing.assert_array_equal(clip.timestamps, plain.timestamps)
    reference = compute_features(plain)
    np.testing.assert_allclose(feats.pooled, reference.pooled, atol=1e-4)
    np.testing.assert_array_equal(feats.motion, reference.motion)
    np.testing.assert_array_equal(feats.source, reference.source)
    np.testing.assert_array_equal(feats.content, content_scores(plain.frames))


def test_default_sampling_finds_the_same_cuts(clips: dict[str, ClipTruth]) -> None:
    from videozero.evidence.mine import DEFAULT_SAMPLING, mine_clip

    for truth in clips.values():
        clip, feats = decode_with_features(truth.path, DEFAULT_SAMPLING)
        cuts = [s.start_s for s in mine_clip(clip, feats) if s.level == "shot"][1:]
        assert len(cuts) == len(truth.cuts_s) and all(
            abs(a - b) <= 1 / DEFAULT_SAMPLING.fps for a, b in zip(cuts, truth.cuts_s, strict=True)
        ), (cuts, truth.cuts_s)


def test_near_identical_frames_reuse_the_last_encoded_frames_features(tmp_path: Path) -> None:
    from videozero.evidence import features

    spec = ClipSpec(
        shots=[
            ShotSpec(duration_s=5.0, colour=(90, 90, 90), pattern="checker", period=10),
            ShotSpec(duration_s=3.0, colour=(40, 120, 170), pattern="stripes"),
        ],
        events=[  # a big object, then one so small that the mean change stays under REUSE_MEAN
            EventSpec(kind="appear", start_s=1.5, end_s=2.5, colour=(230, 40, 40), at=(0.3, 0.5)),
            EventSpec(kind="appear", start_s=3.5, end_s=5.0, size=0.08, colour=(250, 250, 40), at=(0.7, 0.3)),
        ],
        noise=2.0,
        seed=3,
    )
    truth = write_clip(spec, tmp_path / "still.mp4")
    clip = decode_video(truth.path, SAMPLING)
    feats = compute_features(clip)
    full = compute_features(clip, reuse=False)
    own = np.arange(len(clip))
    at = lambda t: int(np.searchsorted(clip.timestamps, t - 1e-6))  # noqa: E731 - first frame at or after t

    # Cut and event frames (each start and end) are encoded; the static stretches are reused.
    changes = [
        *truth.cuts_s,
        *(t for ev in truth.events for t in (ev.start_s, ev.end_s) if t < clip.duration_s),
    ]
    assert all(feats.source[at(t)] == at(t) for t in changes), (changes, feats.source.tolist())
    for a, b in [(0.0, 1.5), (1.5, 2.5), (2.5, 3.5), (5.0, 8.0)]:
        stretch = own[at(a) + 1 : at(b)]
        assert len(stretch) >= 3 and np.all(feats.source[stretch] < stretch), (a, b, feats.source.tolist())
    small = clip.frames[at(3.5)], clip.frames[at(3.5) - 1]
    grey = features.small_grey(np.stack(small), features.motion_size(*clip.frames.shape[1:3]))
    assert float((grey[0] - grey[1]).abs().mean()) < features.REUSE_MEAN * 255  # only the pixel test sees it

    # A reused frame carries exactly its source's features, and its source was encoded.
    reused = np.flatnonzero(feats.source != own)
    src = feats.source[reused]
    assert len(reused) > len(clip) // 2 and np.all(feats.source[src] == src)
    np.testing.assert_array_equal(feats.pooled[reused], feats.pooled[src])
    np.testing.assert_array_equal(feats.label_ids[reused], feats.label_ids[src])
    np.testing.assert_array_equal(feats.label_probs[reused], feats.label_probs[src])
    # ... which is close to what encoding it would have given (on flat synthetic patterns the encoder
    # moves more with coding noise than on real clips, where the worst was 0.989); encoded frames are
    # unchanged.
    cosine = (feats.pooled[reused] * full.pooled[reused]).sum(1)
    assert cosine.mean() > 0.97 and cosine.min() > 0.9, cosine
    encoded = np.flatnonzero(feats.source == own)
    np.testing.assert_allclose(feats.pooled[encoded], full.pooled[encoded], atol=1e-4)
    np.testing.assert_array_equal(feats.motion, full.motion)
    np.testing.assert_array_equal(full.source, own)


def test_features_cached_under_other_settings_are_not_read(tmp_path: Path, clips) -> None:  # type: ignore[no-untyped-def]
    from videozero.evidence import features
    from videozero.video.cache import VideoCache

    clip = decode_video(clips["demo_3shots.mp4"].path, SAMPLING)
    feats = compute_features(clip)
    stale = {**feats.arrays(), "version": np.array(1)}
    assert features.FrameFeatures.from_arrays(stale) is None
    assert features.FrameFeatures.from_arrays(feats.arrays()) is not None
    cache = VideoCache(tmp_path)
    cache.save("ab" * 32, SAMPLING, "features-e128", {**stale, "pooled": np.zeros_like(feats.pooled)})
    again, cached = features.cached_features(clip, "ab" * 32, SAMPLING, cache)
    assert not cached and np.abs(again.pooled).sum() > 0
    assert str(features.FEATURES_VERSION) in features.features_entry()
    assert features.cached_features(clip, "ab" * 32, SAMPLING, cache)[1]


def test_the_encoders_inference_copy_matches_the_network() -> None:
    import torch

    from videozero.video.frame_encoder import frame_encoder

    encoder = frame_encoder()
    frames = np.random.default_rng(0).integers(0, 256, (5, 96, 160, 3), dtype=np.uint8)
    with torch.no_grad():
        x = encoder.normalise(frames, 128)
        plain = encoder.net.extract_features(x)
        fused = encoder.fused()(x)
    assert fused.shape == plain.shape == (5, 1280, 4, 4)
    torch.testing.assert_close(fused, plain, atol=2e-4, rtol=1e-4)
    pooled, logits = encoder.pooled_and_logits(frames, 128)
    torch.testing.assert_close(pooled, plain.mean((2, 3)), atol=2e-5, rtol=1e-4)
    torch.testing.assert_close(logits, encoder.net._fc(plain.mean((2, 3))), atol=2e-4, rtol=1e-4)
    assert not any("fused" in name for name in encoder.state_dict())
