"""Mining the real sample clips: every clip mines without error, and frame times are the container's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from store import open_store
from videozero.stages.mine import mine_videos
from videozero.video.decode import SamplingConfig, decode_video

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "videos" / "real"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} is absent (the shared sample videos)")

# Coarse sampling keeps this test fast; timestamps are checked at the native rate below.
SAMPLING = SamplingConfig(fps=0.5, max_frames=24, short_side=112)


def test_every_real_clip_mines_without_error(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/s.db")
    summary = mine_videos(store, [REAL], SAMPLING, cache_dir=tmp_path / "cache")
    store.dispose()
    assert len(summary.results) >= 6
    assert summary.errors == []
    for r in summary.results:
        assert r.status == "mined" and r.shots >= 1 and r.segments >= 2 and (r.duration_s or 0) > 1.0, r


def _container_times(path: Path) -> tuple[np.ndarray, float]:
    """Every frame's presentation time and the stream's end, as PyAV (FFmpeg) reports them."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times = np.array(sorted(float(f.time) for f in container.decode(stream)))
        end = (
            float(stream.duration * stream.time_base) if stream.duration else float(container.duration) / 1e6
        )
    start = times[0]
    return times - start, end - start


@pytest.mark.parametrize("name", ["goldeneye-vfr-drop3.mp4", "testvideo.mp4"])
def test_frame_times_are_the_containers(name: str) -> None:
    path = REAL / name
    clip = decode_video(path, SamplingConfig(fps=120, max_frames=4096, short_side=32))
    times, end = _container_times(path)
    assert len(clip) == len(times) == clip.frame_count
    assert np.all(np.diff(clip.timestamps) > 0)
    np.testing.assert_allclose(clip.timestamps, times, atol=2e-3)
    assert clip.duration_s == pytest.approx(end, abs=0.05)
    if name.startswith("goldeneye"):  # variable frame rate: the gaps really differ
        gaps = np.diff(times)
        assert gaps.max() > 1.5 * gaps.min()
    sampled = decode_video(path, SamplingConfig(fps=2, max_frames=4096, short_side=32))
    assert np.all(np.diff(sampled.timestamps) > 0)
    assert set(np.round(sampled.timestamps, 4)) <= set(np.round(times, 4))
