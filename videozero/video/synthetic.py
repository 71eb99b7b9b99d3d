"""Synthetic clips whose cuts and events are known by construction: a background per shot, and simple
objects that appear, move or change colour at given times. Written with PyAV as H.264 mp4.

Used wherever ground truth must be exact: mining tests, model warm-up tasks, question-family tests.
All times are seconds from the start of the clip; a frame at time t shows the state at t.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator

RGB = tuple[int, int, int]
Pattern = Literal["flat", "stripes", "checker", "gradient", "rings"]
EventKind = Literal["appear", "move", "recolour"]


class ShotSpec(BaseModel):
    """One shot: how long it lasts and what its (static) background looks like."""

    duration_s: float = Field(gt=0)
    colour: RGB = (40, 90, 160)
    pattern: Pattern = "stripes"
    period: int = Field(16, ge=2, description="pattern period in pixels")


class EventSpec(BaseModel):
    """An object event inside the clip, visible exactly during [start_s, end_s).

    - `appear`: a static object at `at` is on screen during the span and absent otherwise;
    - `move`: an object travels from `at` to `to` during the span (absent otherwise);
    - `recolour`: an object at `at` is on screen for the whole shot holding `start_s` in `colour`,
      and shows `new_colour` during the span.
    Positions are the object's centre as fractions of (width, height).
    """

    kind: EventKind
    start_s: float = Field(ge=0)
    end_s: float
    shape: Literal["square", "disc"] = "square"
    size: float = Field(0.3, gt=0, le=1, description="side or diameter as a fraction of the height")
    colour: RGB = (230, 40, 40)
    new_colour: RGB = (40, 220, 60)
    at: tuple[float, float] = (0.3, 0.5)
    to: tuple[float, float] = (0.7, 0.5)

    @model_validator(mode="after")
    def _ordered(self) -> EventSpec:
        if self.end_s <= self.start_s:
            raise ValueError(f"event {self.kind} ends ({self.end_s}) before it starts ({self.start_s})")
        return self


class ClipSpec(BaseModel):
    """A whole clip: its shots in order, the events over them, and the encoding parameters.

    `frame_times_s` overrides the constant `fps` grid with explicit frame times (variable frame rate).
    """

    shots: list[ShotSpec] = Field(min_length=1)
    events: list[EventSpec] = Field(default_factory=list)
    fps: float = Field(10.0, gt=0, le=120)
    width: int = Field(160, ge=16, le=8192)
    height: int = Field(120, ge=16, le=8192)
    noise: float = Field(0.0, ge=0, description="std of per-frame pixel noise (0 = clean)")
    seed: int = 0
    frame_times_s: list[float] | None = None
    crf: int = Field(18, ge=0, le=51)

    @property
    def duration_s(self) -> float:
        return float(sum(s.duration_s for s in self.shots))

    def times(self) -> np.ndarray:
        """Presentation time of every frame the clip will hold."""
        if self.frame_times_s is not None:
            t = np.asarray(self.frame_times_s, dtype=np.float64)
            if len(t) == 0 or np.any(np.diff(t) <= 0) or t[0] < 0:
                raise ValueError("frame_times_s must be non-empty, start at >= 0 and increase strictly")
            return t
        return np.arange(round(self.duration_s * self.fps)) / self.fps


@dataclass(frozen=True)
class EventTruth:
    """Where an injected event really is: its kind, the frames' span in seconds and its shot."""

    kind: EventKind
    start_s: float
    end_s: float
    shot_index: int


@dataclass(frozen=True)
class ClipTruth:
    """Ground truth of a written clip. `cuts_s` are the times of the first frame of every shot but the
    first; `shots` the [start, end) of each shot; `frame_times_s` every frame's presentation time."""

    path: Path
    duration_s: float
    cuts_s: list[float]
    shots: list[tuple[float, float]]
    events: list[EventTruth]
    frame_times_s: list[float] = field(repr=False)


def shot_bounds(spec: ClipSpec) -> list[tuple[float, float]]:
    """[start, end) of every shot in seconds.

    >>> shot_bounds(ClipSpec(shots=[ShotSpec(duration_s=1.5), ShotSpec(duration_s=2)]))
    [(0.0, 1.5), (1.5, 3.5)]
    """
    ends = np.cumsum([s.duration_s for s in spec.shots])
    starts = np.concatenate([[0.0], ends[:-1]])
    return [(float(a), float(b)) for a, b in zip(starts, ends, strict=True)]


def _background(shot: ShotSpec, width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    p = float(shot.period)
    if shot.pattern == "flat":
        level = np.ones_like(x)
    elif shot.pattern == "stripes":
        level = 0.6 + 0.4 * (np.floor((x + 0.5 * y) / p) % 2)
    elif shot.pattern == "checker":
        level = 0.55 + 0.45 * ((np.floor(x / p) + np.floor(y / p)) % 2)
    elif shot.pattern == "gradient":
        level = 0.3 + 0.7 * (x / max(1, width - 1))
    else:  # rings
        r = np.hypot(x - width / 2, y - height / 2)
        level = 0.6 + 0.4 * np.cos(2 * np.pi * r / p)
    return np.clip(level[..., None] * np.asarray(shot.colour, np.float32), 0, 255)


def _draw(frame: np.ndarray, event: EventSpec, centre: tuple[float, float], colour: RGB) -> None:
    h, w = frame.shape[:2]
    side = max(2.0, event.size * h)
    cx, cy = centre[0] * w, centre[1] * h
    x0, x1 = round(cx - side / 2), round(cx + side / 2)
    y0, y1 = round(cy - side / 2), round(cy + side / 2)
    x0c, x1c, y0c, y1c = max(0, x0), min(w, x1), max(0, y0), min(h, y1)
    if x0c >= x1c or y0c >= y1c:
        return
    if event.shape == "square":
        frame[y0c:y1c, x0c:x1c] = colour
        return
    yy, xx = np.mgrid[y0c:y1c, x0c:x1c]
    inside = (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= (side / 2) ** 2
    frame[y0c:y1c, x0c:x1c][inside] = colour


def render_frame(spec: ClipSpec, t: float, backgrounds: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """The uint8 RGB frame [H, W, 3] the clip shows at time `t`."""
    bounds = shot_bounds(spec)
    shot = next((i for i, (a, b) in enumerate(bounds) if a <= t < b), len(bounds) - 1)
    bg = (
        backgrounds[shot]
        if backgrounds is not None
        else _background(spec.shots[shot], spec.width, spec.height)
    )
    frame = bg.copy()
    for ev in spec.events:
        a, b = bounds[_shot_of(bounds, ev.start_s)]
        if ev.kind == "recolour" and a <= t < b:
            _draw(frame, ev, ev.at, ev.new_colour if ev.start_s <= t < ev.end_s else ev.colour)
        elif ev.kind != "recolour" and ev.start_s <= t < ev.end_s:
            u = (t - ev.start_s) / (ev.end_s - ev.start_s) if ev.kind == "move" else 0.0
            centre = (ev.at[0] + u * (ev.to[0] - ev.at[0]), ev.at[1] + u * (ev.to[1] - ev.at[1]))
            _draw(frame, ev, centre, ev.colour)
    if spec.noise > 0:
        rng = np.random.default_rng(spec.seed * 1_000_003 + round(t * 1000))
        frame = frame + rng.normal(0, spec.noise, frame.shape).astype(np.float32)
    return np.clip(frame, 0, 255).astype(np.uint8)


def _shot_of(bounds: list[tuple[float, float]], t: float) -> int:
    return next((i for i, (a, b) in enumerate(bounds) if a <= t < b), len(bounds) - 1)


def _first_frame_at_or_after(times: np.ndarray, t: float) -> float:
    i = int(np.searchsorted(times, t - 1e-9))
    return float(times[min(i, len(times) - 1)])


def write_clip(spec: ClipSpec, path: str | Path) -> ClipTruth:
    """Encode `spec` as an H.264 mp4 at `path` and return its ground truth, in seconds.

    Event and cut times are reported at the first frame that shows them (what a decoder can see).
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    times = spec.times()
    bounds = shot_bounds(spec)
    backgrounds = [_background(s, spec.width, spec.height) for s in spec.shots]
    time_base = Fraction(1, 1000) if spec.frame_times_s is not None else Fraction(1, 1) / Fraction(spec.fps)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(spec.fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        stream.options = {"crf": str(spec.crf), "preset": "ultrafast", "tune": "zerolatency"}
        for t in times:
            frame = av.VideoFrame.from_ndarray(render_frame(spec, float(t), backgrounds), format="rgb24")
            frame.pts = round(Fraction(float(t)).limit_denominator(1_000_000) / time_base)
            frame.time_base = time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    last = float(times[-1]) + (float(times[-1] - times[-2]) if len(times) > 1 else 1.0 / spec.fps)
    snap = lambda t: _first_frame_at_or_after(times, t)  # noqa: E731
    events = []
    for ev in spec.events:
        start, end = snap(ev.start_s), (snap(ev.end_s) if ev.end_s <= times[-1] else last)
        events.append(EventTruth(ev.kind, start, end, _shot_of(bounds, ev.start_s)))
    shots = [
        (snap(a) if i else 0.0, snap(b) if i < len(bounds) - 1 else last) for i, (a, b) in enumerate(bounds)
    ]
    return ClipTruth(
        path=path,
        duration_s=last,
        cuts_s=[s for s, _ in shots[1:]],
        shots=shots,
        events=events,
        frame_times_s=[float(t) for t in times],
    )


def demo_spec(seed: int = 0) -> ClipSpec:
    """A 9 s, 3-shot clip with one event of each kind, different backgrounds per shot."""
    return ClipSpec(
        shots=[
            ShotSpec(duration_s=3.0, colour=(40, 90, 160), pattern="stripes"),
            ShotSpec(duration_s=3.0, colour=(170, 150, 60), pattern="checker", period=12),
            ShotSpec(duration_s=3.0, colour=(60, 140, 90), pattern="rings", period=20),
        ],
        events=[
            EventSpec(kind="appear", start_s=1.0, end_s=2.0, colour=(230, 40, 40), at=(0.6, 0.45)),
            EventSpec(
                kind="move",
                start_s=3.8,
                end_s=5.2,
                shape="disc",
                colour=(250, 250, 250),
                at=(0.2, 0.5),
                to=(0.8, 0.5),
            ),
            EventSpec(
                kind="recolour",
                start_s=7.0,
                end_s=8.0,
                colour=(30, 30, 200),
                new_colour=(250, 220, 0),
                at=(0.5, 0.5),
            ),
        ],
        seed=seed,
    )
