"""Decoding: sampling on the time axis, true timestamps, and one clear error per kind of bad file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from videozero.errors import VideozeroError
from videozero.video.decode import MAX_PIXELS, SamplingConfig, decode_video, read_header, sample_indices
from videozero.video.synthetic import ClipSpec, ShotSpec, write_clip


def test_native_rate_keeps_the_last_frame_despite_float32_times() -> None:
    # decord reports times as float32: 272/30 rounds below the grid point, which used to drop frame 272.
    starts = (np.arange(273) / 30).astype(np.float32)
    assert sample_indices(starts, fps=30.0, max_frames=10_000).tolist() == list(range(273))
    long = (np.arange(120 * 600) / 120).astype(np.float32)  # 10 min at 120 fps
    assert len(sample_indices(long, fps=120.0, max_frames=100_000)) == len(long)


def test_grid_is_on_time_not_on_indices() -> None:
    starts = np.array([0.0, 0.04, 0.08, 1.0, 1.04, 2.0])  # a gap: 1 s with no frames
    assert sample_indices(starts, fps=1.0, max_frames=10).tolist() == [0, 3, 5]
    assert sample_indices(starts, fps=1.0, max_frames=2).tolist() == [0, 5]


def test_decoded_frames_carry_their_true_times(tmp_path: Path) -> None:
    times = [0.0, 0.1, 0.2, 0.7, 0.8, 1.5, 1.6, 1.7]  # variable frame rate
    truth = write_clip(ClipSpec(shots=[ShotSpec(duration_s=1.8)], frame_times_s=times), tmp_path / "vfr.mp4")
    clip = decode_video(truth.path, SamplingConfig(fps=100, max_frames=100, short_side=64))
    assert len(clip) == len(times) == clip.frame_count
    np.testing.assert_allclose(clip.timestamps, times, atol=1e-3)
    assert clip.frames.shape[1:] == (64, 86, 3)  # 160x120 -> short side 64, width 85.3 -> even 86
    sparse = decode_video(truth.path, SamplingConfig(fps=2, max_frames=100, short_side=64))
    # grid 0, 0.5, 1.0, 1.5 s -> nearest frames 0.0, 0.7, 0.8, 1.5
    np.testing.assert_allclose(sparse.timestamps, [0.0, 0.7, 0.8, 1.5], atol=1e-3)


def test_native_rate_decode_keeps_every_frame(tmp_path: Path) -> None:
    truth = write_clip(
        ClipSpec(shots=[ShotSpec(duration_s=2.7)], fps=10, width=64, height=48), tmp_path / "c.mp4"
    )
    clip = decode_video(truth.path, SamplingConfig(fps=10, max_frames=1000, short_side=48))
    assert len(clip) == len(truth.frame_times_s) == 27


def _huge_clip(path: Path) -> Path:
    """One black frame larger than MAX_PIXELS (MPEG-4 part 2 encodes it in about a second)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=1)
        stream.width, stream.height, stream.pix_fmt = 7776, 4384, "yuv420p"
        frame = av.VideoFrame(stream.width, stream.height, "yuv420p")
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert MAX_PIXELS < 7776 * 4384
    return path


def test_bad_files_are_refused_with_one_clear_reason(tmp_path: Path) -> None:
    good = write_clip(
        ClipSpec(shots=[ShotSpec(duration_s=1.0)], width=64, height=48), tmp_path / "ok.mp4"
    ).path
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 50)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    empty = tmp_path / "empty.mp4"
    empty.touch()
    cases = {
        text: "not a readable video",
        truncated: "replace it with a complete video file",
        empty: "is empty (0 bytes)",
        tmp_path / "missing.mp4": "does not exist",
        tmp_path: "is not a regular file",
        _huge_clip(tmp_path / "huge.mp4"): "megapixel limit",
    }
    for path, fragment in cases.items():
        with pytest.raises(VideozeroError) as info:
            decode_video(path)
        message = str(info.value)
        assert str(path) in message and fragment in message, message
        assert "\n" not in message
    assert read_header(good).width == 64


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = write_clip(
        ClipSpec(shots=[ShotSpec(duration_s=0.5)], width=32, height=32), tmp_path / "x.mp4"
    ).path
    path.chmod(0)
    with pytest.raises(VideozeroError, match="permission denied"):
        decode_video(path)
