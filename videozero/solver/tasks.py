"""Self-generated verifiable tasks on generated clips: answers and evidence spans known by construction.

Used for the warm-up (a supervised cold start needs targets without human labels), for the learning
test and for `bench/learning.py`. Every clip is written as an mp4 with `video.synthetic.write_clip` and
decoded back with `video.decode.decode_video`, so the frames and their true timestamps are what a real
run sees. Families:

- `colour`: what colour is the object that appears (4 options); evidence: when it is on screen;
- `when`: in which second of the clip is the object on screen (4 options); evidence: its span;
- `count`: how many times the object appears (number, 1 to 3); evidence: every appearance;
- `order`: which of two objects appears first (2 options); evidence: both appearances.

A task whose best constant answer scores well measures nothing: `constant_baseline` gives, per family,
the best constant answer and the best constant evidence span, and what they score.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from videozero.models.prompt import Request, VideoInput
from videozero.question_prompt import option_letter, question_prompt
from videozero.rewards import Span, answer_accuracy, canonical_answer, temporal_iou

FAMILIES = ("colour", "when", "count", "order")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (225, 35, 35),
    "green": (40, 200, 60),
    "blue": (40, 80, 235),
    "yellow": (245, 225, 30),
    "white": (250, 250, 250),
    "purple": (150, 50, 210),
}
FRAME_STEP_S = 0.5


@dataclass(frozen=True)
class TaskClips:
    """How task clips look: frames per clip (FRAME_STEP_S apart) and their side in pixels."""

    frames: int = 8
    size: int = 112

    def __post_init__(self) -> None:
        if self.frames < 4 or self.frames % 4:
            raise ValueError(
                f"task clips need a multiple of 4 frames (the `when` options are quarters), got {self.frames}"
            )
        if self.size < 32:
            raise ValueError(f"task clips need at least 32 px frames, got {self.size}")


@dataclass(frozen=True)
class VerifiableTask:
    """A question on a generated clip with its answer and evidence known by construction."""

    family: str
    text: str
    options: tuple[str, ...] | None
    answer: str
    answer_kind: str
    evidence: tuple[Span, ...]
    video: VideoInput
    duration: float
    path: str

    @property
    def prompt(self) -> str:
        """The question as the solver reads it: text, lettered options and the answer format."""
        return question_prompt(self.text, self.options, {"answer_kind": self.answer_kind})

    def request(self) -> Request:
        return Request(self.prompt, self.video)


@dataclass(frozen=True)
class ConstantBaseline:
    """The best constant answer and span for one family, and their mean accuracy and IoU."""

    family: str
    answer: str
    accuracy: float
    span: Span
    iou: float
    n: int


def _background(rng: np.random.Generator):
    from videozero.video.synthetic import ShotSpec

    level = int(rng.integers(70, 150))
    grey = (level, level, level + int(rng.integers(-10, 10)))
    pattern = str(rng.choice(["flat", "stripes", "checker", "gradient"]))
    return ShotSpec(duration_s=1.0, colour=grey, pattern=pattern, period=int(rng.integers(8, 24)))


def _event(start_frame: int, length: int, colour: str, rng: np.random.Generator, shape: str | None = None):
    from videozero.video.synthetic import EventSpec

    return EventSpec(
        kind="appear",
        start_s=start_frame * FRAME_STEP_S,
        end_s=(start_frame + length) * FRAME_STEP_S,
        shape=shape or str(rng.choice(["square", "disc"])),
        size=float(rng.uniform(0.3, 0.5)),
        colour=COLOURS[colour],
        at=(float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.3, 0.7))),
    )


def _layout(family: str, rng: np.random.Generator, frames: int):
    """(events as (start_frame, length, colour, shape), text, options, answer, kind) of one task."""
    names = list(COLOURS)
    if family in ("colour", "when"):
        colour = str(rng.choice(names))
        if family == "colour":
            length = int(rng.integers(1, 4))
            start = int(rng.integers(0, frames - length + 1))
            others = [c for c in names if c != colour]
            options = [colour, *rng.choice(others, size=3, replace=False).tolist()]
            rng.shuffle(options)
            answer = option_letter(options.index(colour))
            text = "What colour is the object that appears in the video?"
            return [(start, length, colour, None)], text, options, answer, "option"
        per = frames // 4
        window = int(rng.integers(0, 4))
        length = int(rng.integers(1, per + 1))
        start = window * per + int(rng.integers(0, per - length + 1))
        step = per * FRAME_STEP_S
        options = [f"between {i * step:.1f} and {(i + 1) * step:.1f} seconds" for i in range(4)]
        text = f"When is the {colour} object on screen?"
        return [(start, length, colour, None)], text, options, option_letter(window), "option"
    if family == "count":
        colour = str(rng.choice(names))
        shape = str(rng.choice(["square", "disc"]))
        count = int(rng.integers(1, min(3, (frames + 1) // 2) + 1))
        # one-frame appearances with at least one empty frame between them (else they read as one)
        starts = sorted(rng.choice(frames, size=count, replace=False).tolist())
        while any(b - a < 2 for a, b in pairwise(starts)):  # always ends: count <= (frames + 1) / 2
            starts = sorted(rng.choice(frames, size=count, replace=False).tolist())
        events = [(s, 1, colour, shape) for s in starts]
        text = f"How many times does the {colour} {shape} appear?"
        return events, text, None, str(count), "number"
    if family == "order":
        first, second = (str(c) for c in rng.choice(names, size=2, replace=False))
        len_a, len_b = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        start_a = int(rng.integers(0, frames - len_a - len_b + 1))
        start_b = int(rng.integers(start_a + len_a, frames - len_b + 1))
        options = [f"the {first} object", f"the {second} object"]
        order = rng.permutation(2)
        options = [options[i] for i in order]
        answer = option_letter(int(np.argmin(order)))
        events = [(start_a, len_a, first, None), (start_b, len_b, second, None)]
        return events, "Which object appears first?", options, answer, "option"
    raise ValueError(f"unknown task family {family!r}; use one of {', '.join(FAMILIES)}")


def make_task(family: str, seed: int, clip_dir: Path, clips: TaskClips = TaskClips()) -> VerifiableTask:
    """One task of `family`, its clip written under `clip_dir` and decoded back (seeded, reproducible)."""
    from videozero.video.decode import SamplingConfig, decode_video
    from videozero.video.synthetic import ClipSpec, write_clip

    tag = int(hashlib.blake2b(family.encode(), digest_size=2).hexdigest(), 16)
    rng = np.random.default_rng([seed, tag])
    events, text, options, answer, kind = _layout(family, rng, clips.frames)
    shot = _background(rng).model_copy(update={"duration_s": clips.frames * FRAME_STEP_S})
    spec = ClipSpec(
        shots=[shot],
        events=[_event(s, n, c, rng, shape) for s, n, c, shape in events],
        fps=1 / FRAME_STEP_S,
        width=clips.size,
        height=clips.size,
        seed=seed,
    )
    path = Path(clip_dir) / f"{family}-{seed}.mp4"
    truth = write_clip(spec, path)
    clip = decode_video(
        path, SamplingConfig(fps=1 / FRAME_STEP_S, max_frames=clips.frames, short_side=clips.size)
    )
    # Evidence from the layout: frame k shows [k, k + 1) * FRAME_STEP_S.
    evidence = tuple(sorted((s * FRAME_STEP_S, (s + n) * FRAME_STEP_S) for s, n, _, _ in events))
    return VerifiableTask(
        family=family,
        text=text,
        options=tuple(options) if options else None,
        answer=answer,
        answer_kind=kind,
        evidence=evidence,
        video=VideoInput(clip.frames, clip.timestamps),
        duration=float(truth.duration_s),
        path=str(path),
    )


def make_tasks(
    n: int,
    seed: int = 0,
    families: Sequence[str] = FAMILIES,
    clip_dir: str | Path | None = None,
    clips: TaskClips = TaskClips(),
) -> list[VerifiableTask]:
    """`n` tasks cycling through `families`; task i uses seed `seed * 100_003 + i` (sets are disjoint by seed)."""
    root = Path(clip_dir) if clip_dir is not None else Path(tempfile.mkdtemp(prefix="vz-tasks-"))
    root.mkdir(parents=True, exist_ok=True)
    return [make_task(families[i % len(families)], seed * 100_003 + i, root, clips) for i in range(n)]


def _grid_spans(duration: float) -> list[Span]:
    points = np.arange(0.0, duration + 1e-9, FRAME_STEP_S)
    return [(float(a), float(b)) for i, a in enumerate(points) for b in points[i + 1 :]]


def constant_baseline(tasks: Iterable[VerifiableTask]) -> dict[str, ConstantBaseline]:
    """Per family: the constant answer with the best mean accuracy, and the constant span with the best
    mean IoU against the evidence (spans on the frame grid)."""
    by_family: dict[str, list[VerifiableTask]] = defaultdict(list)
    for task in tasks:
        by_family[task.family].append(task)
    out = {}
    for family, group in by_family.items():
        kind = group[0].answer_kind
        candidates = sorted({canonical_answer(t.answer, kind) or t.answer for t in group})
        if kind == "option":
            width = max(len(t.options or ()) for t in group)
            candidates = sorted(set(candidates) | {option_letter(i) for i in range(width)})

        def mean_acc(answer: str, group=group, kind=kind) -> float:
            return sum(answer_accuracy(answer, t.answer, kind) for t in group) / len(group)

        best_answer = max(candidates, key=lambda a: (mean_acc(a), a))
        spans = _grid_spans(max(t.duration for t in group))

        def mean_iou(span: Span, group=group) -> float:
            return sum(temporal_iou([span], t.evidence) for t in group) / len(group)

        best_span = max(spans, key=mean_iou)
        out[family] = ConstantBaseline(
            family, best_answer, mean_acc(best_answer), best_span, mean_iou(best_span), len(group)
        )
    return out
