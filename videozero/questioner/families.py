"""Verifiable question families built from mined evidence: answers and evidence known by construction.

Six families, each anchored to mined segments, each with difficulty levels 0-3 (`LEVELS`) whose knobs the
curriculum turns:

- `grounding`: "when is the scene in the query image shown?" options are spans; distractor spans are
  dissimilar (low levels) or similar (high levels) by frame embedding; more options as levels rise.
- `ordering`: put 2 to 5 evidence clips (one still each) in temporal order; the minimum gap between
  the clips shrinks as levels rise. Answer: the clip numbers in order ("2,1,3").
- `arrow_of_time`: are the frames of a high-motion evidence clip shown forward or backward; fewer
  frames and less motion as levels rise.
- `what_next`: which option frame comes right after the moment shown; distractors dissimilar (low
  levels) or similar (high levels), more options as levels rise.
- `counting`: how many shot changes between two times; longer windows and more cuts as levels rise.
- `semantic_grounding`: when does something the miner's labels name first appear; less confident
  labels and, from level 2, a later appearance of the same thing among the distractors.

A builder returns `Unsupported` (with the reason) when a video cannot support its family (no cuts to
count, too few segments); `family_support` says per family why a video gets none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from videozero.evidence.views import SegmentView, VideoEvidence
from videozero.question_prompt import option_letter
from videozero.questioner.candidate import Candidate
from videozero.questioner.round_config import FAMILIES
from videozero.questioner.verify_config import MIN_EVIDENCE_S
from videozero.rewards import Span, temporal_iou

MAX_LEVEL = 3

# The knobs of every family at levels 0..3.
LEVELS: dict[str, list[dict[str, Any]]] = {
    "grounding": [
        {"options": 2, "distractors": "dissimilar"},
        {"options": 3, "distractors": "random"},
        {"options": 4, "distractors": "similar"},
        {"options": 5, "distractors": "similar"},
    ],
    "ordering": [
        {"clips": 2, "min_gap_fraction": 0.25},
        {"clips": 3, "min_gap_fraction": 0.12},
        {"clips": 4, "min_gap_fraction": 0.06},
        {"clips": 5, "min_gap_fraction": 0.03},
    ],
    "arrow_of_time": [
        {"frames": 4, "motion_rank": 0.25},
        {"frames": 4, "motion_rank": 0.5},
        {"frames": 3, "motion_rank": 0.75},
        {"frames": 3, "motion_rank": 1.0},
    ],
    "what_next": [
        {"options": 2, "gap_s": 1.0, "distractors": "dissimilar"},
        {"options": 3, "gap_s": 1.0, "distractors": "random"},
        {"options": 4, "gap_s": 1.0, "distractors": "similar"},
        {"options": 4, "gap_s": 0.5, "distractors": "similar"},
    ],
    "counting": [
        {"max_cuts": 1, "max_window_fraction": 0.4},
        {"max_cuts": 2, "max_window_fraction": 0.5},
        {"max_cuts": 4, "max_window_fraction": 0.75},
        {"max_cuts": 8, "max_window_fraction": 1.0},
    ],
    "semantic_grounding": [
        {"options": 2, "min_score": 0.3, "later_distractor": False},
        {"options": 3, "min_score": 0.2, "later_distractor": False},
        {"options": 3, "min_score": 0.12, "later_distractor": True},
        {"options": 4, "min_score": 0.08, "later_distractor": True},
    ],
}

# The margin kept around a cut when a counting window starts or ends (so that one sampled frame more or
# less cannot change the count).
CUT_MARGIN_S = 0.5


@dataclass(frozen=True)
class Unsupported:
    """A builder's "no question here", with the reason (one clause, for tables)."""

    reason: str


def knobs(family: str, level: int) -> dict[str, Any]:
    """The knobs of `family` at `level` (clamped to 0..MAX_LEVEL).

    >>> knobs("ordering", 7)["clips"]
    5
    """
    return dict(LEVELS[family][max(0, min(MAX_LEVEL, level))])


def span_text(span: Span) -> str:
    """
    >>> span_text((1.0, 2.25))
    'from 1.0 s to 2.2 s'
    """
    return f"from {span[0]:.1f} s to {span[1]:.1f} s"


def _weighted_pick(segs: Sequence[SegmentView], rng: np.random.Generator) -> SegmentView:
    w = np.array([max(s.saliency, 0.0) + 0.05 for s in segs])
    return segs[int(rng.choice(len(segs), p=w / w.sum()))]


def _spans_apart(a: Span, b: Span) -> bool:
    return (
        temporal_iou([a], [b]) < 0.1
        and not (a[0] >= b[0] and a[1] <= b[1])
        and not (b[0] >= a[0] and b[1] <= a[1])
    )


def _pick_distractors(
    ev: VideoEvidence,
    anchor: Span,
    pool: Sequence[Span],
    k: int,
    how: str,
    rng: np.random.Generator,
    minimum: int = 1,
) -> list[Span] | None:
    """Up to `k` spans of `pool` apart from `anchor` and from each other, by frame-embedding similarity
    (`how`: similar, dissimilar or random); None when fewer than `minimum` exist. A short video gives
    fewer options than its level asks for rather than none."""
    cands = [p for p in dict.fromkeys(pool) if _spans_apart(p, anchor)]
    if how == "random":
        order = list(rng.permutation(len(cands)))
    else:
        target = ev.embedding(anchor)
        sims = np.array([float(ev.embedding(p) @ target) for p in cands])
        order = list(np.argsort(-sims if how == "similar" else sims, kind="stable"))
    chosen: list[Span] = []
    for i in order:
        if all(_spans_apart(cands[i], c) for c in chosen):
            chosen.append(cands[i])
        if len(chosen) == k:
            break
    return chosen if len(chosen) >= min(k, minimum) else None


def _options_question(
    family: str,
    level: int,
    text: str,
    truth: Span,
    distractors: Sequence[Span],
    rng: np.random.Generator,
    spec: dict[str, Any],
    segment_ids: tuple[int, ...],
) -> Candidate:
    spans = [truth, *distractors]
    order = rng.permutation(len(spans))
    options = tuple(span_text(spans[i]) for i in order)
    answer = option_letter(int(np.flatnonzero(order == 0)[0]))
    spec = {"answer_kind": "option", **spec, "option_spans": [list(spans[i]) for i in order]}
    return Candidate(family, text, answer, (truth,), options, level, spec, segment_ids)


def _ids(*segs: SegmentView) -> tuple[int, ...]:
    return tuple(s.id for s in segs if s.id is not None)


def _segment_pool(ev: VideoEvidence) -> list[SegmentView]:
    return [
        s for s in ev.of_level("event", "shot") if s.length >= MIN_EVIDENCE_S and s.length < 0.9 * ev.duration
    ]


def grounding(ev: VideoEvidence, level: int, rng: np.random.Generator) -> Candidate | Unsupported:
    k = knobs("grounding", level)
    pool = _segment_pool(ev)
    if len(pool) < 2:
        return Unsupported(
            "fewer than 2 evidence segments (shots or events of 0.4 s or more, shorter than the video)"
        )
    anchor = _weighted_pick(pool, rng)
    distractors = _pick_distractors(
        ev, anchor.span, [s.span for s in pool], k["options"] - 1, k["distractors"], rng
    )
    if distractors is None:
        return Unsupported("no evidence segment apart from the anchor to offer as a distractor")
    inside = ev.frames_in(anchor.span)
    query_t = float(ev.timestamps[inside[len(inside) // 2]])
    return _options_question(
        "grounding",
        level,
        "When is the scene in the image labelled Query shown in the video?",
        anchor.span,
        distractors,
        rng,
        {"query": [{"label": "Query", "times": [query_t]}], "knobs": k},
        _ids(anchor),
    )


def ordering(ev: VideoEvidence, level: int, rng: np.random.Generator) -> Candidate | Unsupported:
    k = knobs("ordering", level)
    min_gap = max(1.0, k["min_gap_fraction"] * ev.duration)
    pool = list(rng.permutation(_segment_pool(ev)))
    chosen: list[SegmentView] = []
    for seg in pool:
        mid = (seg.start_s + seg.end_s) / 2
        if all(
            abs(mid - (c.start_s + c.end_s) / 2) >= min_gap and _spans_apart(seg.span, c.span) for c in chosen
        ):
            chosen.append(seg)
        if len(chosen) == k["clips"]:
            break
    if len(chosen) < 2:
        return Unsupported(f"fewer than 2 evidence segments {min_gap:.1f} s or more apart")
    shown = list(rng.permutation(len(chosen)))  # any order, the identity included: no constant answer
    clips = [chosen[i] for i in shown]
    query = []
    for n, seg in enumerate(clips, start=1):
        inside = ev.frames_in(seg.span)
        query.append({"label": f"Clip {n}", "times": [float(ev.timestamps[inside[len(inside) // 2]])]})
    order = sorted(range(len(clips)), key=lambda i: clips[i].start_s)
    answer = ",".join(str(i + 1) for i in order)
    return Candidate(
        "ordering",
        f"The {len(clips)} images labelled Clip 1 to Clip {len(clips)} are taken from the video. "
        "Put them in the order they happen in the video, earliest first, as clip numbers.",
        answer,
        tuple(sorted(c.span for c in clips)),
        None,
        level,
        {"answer_kind": "permutation", "query": query, "knobs": {**k, "min_gap_s": round(min_gap, 2)}},
        _ids(*clips),
    )


def arrow_of_time(ev: VideoEvidence, level: int, rng: np.random.Generator) -> Candidate | Unsupported:
    k = knobs("arrow_of_time", level)
    pool = [s for s in _segment_pool(ev) if len(ev.frames_in(s.span)) >= k["frames"]]
    if not pool:
        return Unsupported(f"no evidence segment holds {k['frames']} sampled frames")
    pool.sort(key=lambda s: -s.parts.get("motion", 0.0))
    top = pool[: max(1, int(np.ceil(k["motion_rank"] * len(pool))))]
    seg = top[int(rng.integers(len(top)))]
    inside = ev.frames_in(seg.span)
    picks = inside[np.unique(np.linspace(0, len(inside) - 1, k["frames"]).round().astype(int))]
    reverse = bool(rng.integers(2))
    return Candidate(
        "arrow_of_time",
        "The images labelled Clip 1, frame 1 onwards are frames of one moment of the video. "
        "Are they shown in the order they happen in the video, or reversed?",
        "B" if reverse else "A",
        (seg.span,),
        ("forward, in the order they happen", "backward, reversed"),
        level,
        {
            "answer_kind": "option",
            "query": [
                {"label": "Clip 1", "times": [float(ev.timestamps[i]) for i in picks], "reverse": reverse}
            ],
            "knobs": k,
        },
        _ids(seg),
    )


def what_next(ev: VideoEvidence, level: int, rng: np.random.Generator) -> Candidate | Unsupported:
    k = knobs("what_next", level)
    gap = k["gap_s"]
    moments = [s for s in _segment_pool(ev) if s.end_s + gap <= ev.duration - 1e-6]
    if not moments:
        return Unsupported(f"no evidence segment ends {gap:.1f} s or more before the video does")
    seg = _weighted_pick(moments, rng)
    t = float(ev.timestamps[ev.frame_index(seg.end_s - 1e-3)])
    nxt = float(ev.timestamps[ev.frame_index(t + gap)])
    if nxt <= t:
        return Unsupported("no sampled frame follows the chosen moment")
    far = [float(x) for x in ev.timestamps if abs(x - nxt) > max(2 * gap, 1.5) and abs(x - t) > gap]
    if len(far) < k["options"] - 1:
        return Unsupported("too few frames far from the moment to offer as distractors")
    target = ev.pooled[ev.frame_index(nxt)]
    if k["distractors"] == "random":
        picks = list(rng.choice(len(far), size=k["options"] - 1, replace=False))
    else:
        sims = np.array([float(ev.pooled[ev.frame_index(x)] @ target) for x in far])
        order = np.argsort(-sims if k["distractors"] == "similar" else sims, kind="stable")
        picks, used = [], []
        for i in order:  # distractors at least a second apart from each other
            if all(abs(far[i] - u) >= 1.0 for u in used):
                picks.append(int(i))
                used.append(far[i])
            if len(picks) == k["options"] - 1:
                break
        if len(picks) < k["options"] - 1:
            return Unsupported("too few dissimilar frames to offer as distractors")
    times = [nxt, *[far[i] for i in picks]]
    order = rng.permutation(len(times))
    query = [{"label": "Moment", "times": [t]}]
    query += [{"label": f"Option {option_letter(j)}", "times": [times[i]]} for j, i in enumerate(order)]
    return Candidate(
        "what_next",
        "Which option image shows what the video shows right after the image labelled Moment?",
        option_letter(int(np.flatnonzero(order == 0)[0])),
        ((t, nxt),),
        tuple(f"the image labelled Option {option_letter(j)}" for j in range(len(times))),
        level,
        {"answer_kind": "option", "query": query, "knobs": k},
        _ids(seg),
    )


def counting(ev: VideoEvidence, level: int, rng: np.random.Generator) -> Candidate | Unsupported:
    k = knobs("counting", level)
    cuts = ev.cuts
    if not cuts:
        return Unsupported("one shot: there are no cuts to count")
    # Window bounds are sampled instants at least CUT_MARGIN_S from every cut, so one sampled frame
    # more or less cannot change the count. The count is drawn first (0 included), then a window.
    bounds = [float(t) for t in ev.timestamps if all(abs(t - c) >= CUT_MARGIN_S for c in cuts)]
    if all(abs(ev.duration - c) >= CUT_MARGIN_S for c in cuts):
        bounds.append(ev.duration)
    longest = max(1.0, k["max_window_fraction"] * ev.duration)
    windows: dict[int, list[tuple[float, float]]] = {}
    for i, a in enumerate(bounds):
        for b in bounds[i + 1 :]:
            if b - a < 1.0 or b - a > longest + 1e-6:
                continue
            n = sum(a < c < b for c in cuts)
            if n <= k["max_cuts"]:
                windows.setdefault(n, []).append((a, b))
    if len(windows) < 2:  # a single possible count would be a constant answer
        return Unsupported("every window of the allowed lengths holds the same number of cuts")
    n = sorted(windows)[int(rng.integers(len(windows)))]
    a, b = windows[n][int(rng.integers(len(windows[n])))]
    inside = tuple(s for s in ev.of_level("shot") if a < s.start_s < b)
    # The evidence is where the cuts are (a margin either side of each); with no cut, the whole window.
    spans = [(max(a, c - CUT_MARGIN_S), min(b, c + CUT_MARGIN_S)) for c in cuts if a < c < b]
    return Candidate(
        "counting",
        f"How many times does the video cut to a new shot between {a:.1f} s and {b:.1f} s?",
        str(n),
        tuple((round(s, 3), round(e, 3)) for s, e in spans) or ((round(a, 3), round(b, 3)),),
        None,
        level,
        {"answer_kind": "number", "knobs": k, "window": [a, b], "cuts": [c for c in cuts if a < c < b]},
        _ids(*inside),
    )


def semantic_grounding(ev: VideoEvidence, level: int, rng: np.random.Generator) -> Candidate | Unsupported:
    k = knobs("semantic_grounding", level)
    pool = sorted(_segment_pool(ev), key=lambda s: (s.start_s, s.end_s))
    names: dict[str, list[SegmentView]] = {}
    for seg in pool:
        for name, score in seg.labels:
            if score >= k["min_score"]:
                names.setdefault(name, []).append(seg)
    usable = []
    for name, segs in names.items():
        first = segs[0]
        # the thing must not be (confidently) in any segment that starts before its first appearance
        earlier = [s for s in pool if s.start_s < first.start_s and any(n == name for n, _ in s.labels)]
        without = [s.span for s in pool if all(n != name for n, _ in s.labels)]
        if not earlier and len(without) >= k["options"] - 2:
            usable.append((name, first, segs[1:], without))
    if not usable:
        return Unsupported(
            f"no label the miner scores {k['min_score']:.2f} or more is absent before it first appears "
            "with segments without it left to offer as distractors"
        )
    name, first, later, without = usable[int(rng.integers(len(usable)))]
    distractors: list[Span] = []
    if k["later_distractor"]:
        distractors += [s.span for s in later if _spans_apart(s.span, first.span)][:1]
    rest = _pick_distractors(ev, first.span, without, k["options"] - 1 - len(distractors), "random", rng, 0)
    if rest is None:
        return Unsupported("no segment without the label to offer as a distractor")
    distractors += [r for r in rest if all(_spans_apart(r, d) for d in distractors)]
    if not distractors:
        return Unsupported("no segment without the label to offer as a distractor")
    return _options_question(
        "semantic_grounding",
        level,
        f"When does something that looks like a {name} first appear in the video?",
        first.span,
        distractors[: k["options"] - 1],
        rng,
        {"label": name, "knobs": k},
        _ids(first),
    )


BUILDERS: dict[str, Callable[[VideoEvidence, int, np.random.Generator], Candidate | Unsupported]] = {
    "grounding": grounding,
    "ordering": ordering,
    "arrow_of_time": arrow_of_time,
    "what_next": what_next,
    "counting": counting,
    "semantic_grounding": semantic_grounding,
}


def _signature(c: Candidate) -> tuple:
    return (c.family, c.answer, tuple(round(x, 2) for s in c.evidence for x in s), c.text)


def propose(
    ev: VideoEvidence,
    counts: Mapping[str, int],
    levels: Mapping[str, int] | None = None,
    seed: int = 0,
    tries: int = 6,
) -> list[Candidate]:
    """Up to `counts[family]` distinct questions of each family on one video, at the given levels.

    Anchors are drawn with probability rising with saliency; a family the video cannot support yields
    fewer (or no) questions rather than weaker ones.
    """
    rng = np.random.default_rng([seed, ev.seed_key])
    out: list[Candidate] = []
    seen: set[tuple] = set()
    for family, want in counts.items():
        if family not in BUILDERS:
            raise ValueError(f"unknown question family {family!r}; use one of {', '.join(FAMILIES)}")
        level = int((levels or {}).get(family, 0))
        made = 0
        for _ in range(want * tries):
            if made == want:
                break
            cand = BUILDERS[family](ev, level, rng)
            if isinstance(cand, Unsupported) or _signature(cand) in seen:
                continue
            seen.add(_signature(cand))
            out.append(cand)
            made += 1
    return out


def family_support(
    ev: VideoEvidence, families: Sequence[str] = FAMILIES, level: int = 0, tries: int = 12, seed: int = 0
) -> dict[str, str | None]:
    """Per family, None when the video supports it at `level`, else why not (the most frequent reason
    over `tries` draws): what a run reports for a video that got no question."""
    rng = np.random.default_rng([seed, ev.seed_key])
    out: dict[str, str | None] = {}
    for family in families:
        reasons: Counter[str] = Counter()
        for _ in range(tries):
            made = BUILDERS[family](ev, level, rng)
            if not isinstance(made, Unsupported):
                break
            reasons[made.reason] += 1
        else:
            out[family] = reasons.most_common(1)[0][0]
            continue
        out[family] = None
    return out
