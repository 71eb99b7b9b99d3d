"""Synthetic clips: the ground truth they report is what a decoder sees in the written file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from videozero.video.decode import SamplingConfig, decode_video
from videozero.video.synthetic import ClipSpec, EventSpec, ShotSpec, demo_spec, render_frame, write_clip


def test_demo_clip_truth_matches_decoded_frames(tmp_path: Path) -> None:
    spec = demo_spec()
    truth = write_clip(spec, tmp_path / "demo.mp4")
    assert truth.cuts_s == [3.0, 6.0]
    assert [(e.kind, e.start_s, e.end_s, e.shot_index) for e in truth.events] == [
        ("appear", 1.0, 2.0, 0),
        ("move", 3.8, 5.2, 1),
        ("recolour", 7.0, 8.0, 2),
    ]
    clip = decode_video(truth.path, SamplingConfig(fps=spec.fps, max_frames=1000, short_side=spec.height))
    assert len(clip) == len(truth.frame_times_s) == 90
    np.testing.assert_allclose(clip.timestamps, truth.frame_times_s, atol=1e-3)
    # Decoded frames match the rendered ones up to compression error.
    for i in (0, 15, 45, 75):
        expected = render_frame(spec, truth.frame_times_s[i]).astype(np.float32)
        assert np.abs(clip.frames[i].astype(np.float32) - expected).mean() < 6.0


def test_events_are_visible_exactly_in_their_span() -> None:
    spec = ClipSpec(
        shots=[ShotSpec(duration_s=2.0, pattern="flat", colour=(0, 0, 0))],
        events=[EventSpec(kind="appear", start_s=0.5, end_s=1.0, colour=(255, 0, 0), at=(0.5, 0.5))],
    )
    centre = lambda t: render_frame(spec, t)[60, 80].tolist()  # noqa: E731
    assert centre(0.4) == [0, 0, 0]
    assert centre(0.5) == [255, 0, 0]
    assert centre(0.99) == [255, 0, 0]
    assert centre(1.0) == [0, 0, 0]


def test_move_and_recolour() -> None:
    spec = ClipSpec(
        shots=[ShotSpec(duration_s=2.0, pattern="flat", colour=(0, 0, 0))],
        events=[
            EventSpec(kind="move", start_s=0.0, end_s=1.0, size=0.2, at=(0.2, 0.5), to=(0.8, 0.5)),
            EventSpec(kind="recolour", start_s=1.5, end_s=2.0, size=0.2, at=(0.5, 0.2), colour=(0, 0, 255)),
        ],
    )
    early, late = render_frame(spec, 0.0), render_frame(spec, 0.9)
    assert early[60, 32].tolist() == [230, 40, 40] and late[60, 32].tolist() == [0, 0, 0]
    assert late[60, 120].tolist() == [230, 40, 40]
    assert render_frame(spec, 1.0)[24, 80].tolist() == [0, 0, 255]
    assert render_frame(spec, 1.6)[24, 80].tolist() == [40, 220, 60]


def test_bad_specs_are_refused() -> None:
    with pytest.raises(ValueError, match="ends"):
        EventSpec(kind="appear", start_s=1.0, end_s=0.5)
    with pytest.raises(ValueError, match="increase strictly"):
        ClipSpec(shots=[ShotSpec(duration_s=1.0)], frame_times_s=[0.0, 0.5, 0.5]).times()


def test_an_event_ending_on_the_last_frame_ends_there(tmp_path: Path) -> None:
    # Visible during [start, end): the frame at 3.5 s no longer shows it, so the truth ends at 3.5 s.
    spec = ClipSpec(
        shots=[ShotSpec(duration_s=4.0)], events=[EventSpec(kind="appear", start_s=1.0, end_s=3.5)], fps=2
    )
    truth = write_clip(spec, tmp_path / "last.mp4")
    assert truth.frame_times_s[-1] == 3.5 and truth.duration_s == 4.0
    assert (truth.events[0].start_s, truth.events[0].end_s) == (1.0, 3.5)
    background = render_frame(ClipSpec(shots=spec.shots, fps=2), 3.5)
    assert np.array_equal(render_frame(spec, 3.5), background)
