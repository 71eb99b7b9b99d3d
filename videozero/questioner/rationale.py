"""The reasoning of a template question, known by construction: the `<think>` text of its supervised target.

A template family's answer is a few hops from the frames: find where a query image is shown, read that
frame's time, compare it with the options. The constructed answer and evidence supervise the last hop
only; the rationale writes the hops before it, as times of the frames the solver is shown (written as
its video writes them), so that each hop is a short step the learner can imitate:

- grounding: `Query 4.0` (then the option whose span holds it);
- ordering: `Clip 1 4.0, Clip 2 1.0` (then the clips sorted by time);
- arrow_of_time: `3.0, 2.5, 2.0`, the clip's frames in the order shown (rising: forward, falling:
  reversed);
- what_next: `Moment 4.0, next 5.0` (then the option that looks like the frame at 5.0);
- semantic_grounding: `jellyfish 6.0` (its first frame);
- counting: the evidence spans already mark each cut, so none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def shown_time(timestamps: np.ndarray, t: float, within: Sequence[float] | None = None) -> str:
    """The time of the shown frame nearest `t`, as the solver's video writes it; with `within`, the
    nearest inside that span when one is.

    >>> shown_time(np.array([0.0, 2.0, 4.0]), 2.9)
    '2.0'
    >>> shown_time(np.array([0.0, 2.0, 4.0]), 2.9, within=(2.5, 4.5))
    '4.0'
    """
    stamps = np.asarray(timestamps, dtype=np.float64)
    if within is not None:
        inside = stamps[(stamps >= within[0]) & (stamps <= within[1])]
        stamps = inside if len(inside) else stamps
    return f"{stamps[int(np.argmin(np.abs(stamps - float(t))))]:.1f}"


def rationale(
    family: str, spec: Mapping[str, Any], evidence: Sequence[Sequence[float]], timestamps: np.ndarray
) -> str:
    """The `<think>` text of a template question of `family` whose video is shown at `timestamps`.

    >>> rationale("grounding", {"query": [{"label": "Query", "times": [4.2]}]}, [(3, 6)], np.arange(0, 8.0, 2))
    'Query 4.0'
    >>> rationale("counting", {}, [(1, 2)], np.arange(4.0))
    ''
    """
    query = list(spec.get("query") or [])
    if family == "grounding" and query and evidence:
        return f"{query[0]['label']} {shown_time(timestamps, query[0]['times'][0], evidence[0])}"
    if family == "ordering" and query:
        return ", ".join(f"{q['label']} {shown_time(timestamps, q['times'][0])}" for q in query)
    if family == "arrow_of_time" and query:
        times = list(query[0]["times"])
        if query[0].get("reverse"):
            times = times[::-1]
        return ", ".join(shown_time(timestamps, t) for t in times)
    if family == "what_next" and query and evidence:
        return f"Moment {shown_time(timestamps, query[0]['times'][0])}, next {shown_time(timestamps, evidence[0][1])}"
    if family == "semantic_grounding" and evidence and spec.get("label"):
        # its first shown frame: the one nearest the span's start inside it
        return f"{spec['label']} {shown_time(timestamps, evidence[0][0], evidence[0])}"
    return ""
