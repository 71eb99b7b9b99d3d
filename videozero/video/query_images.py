"""The still images a question shows besides its video (a query frame, the clips to order, the option
frames), rebuilt from the true timestamps its `spec["query"]` stores.

`spec["query"]` is a list of `{"label": str, "times": [t, ...], "reverse": bool}`; each item becomes one
still image per time, labelled "<label>" (one frame) or "<label>, frame k" (several), in reverse order
when `reverse` is true (the arrow-of-time family). Images are cut from the frames the question was mined
on (`decode.MINING_SAMPLING`), so every reader (the loop, evaluation, exports) shows the same pixels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from videozero.video.inputs import VideoInput


def nearest_frames(timestamps: np.ndarray, times: Sequence[float]) -> list[int]:
    """Indices of the sampled frames nearest each of `times`.

    >>> nearest_frames(np.array([0.0, 0.5, 1.0]), [0.4, 2.0])
    [1, 2]
    """
    t = np.asarray(timestamps, dtype=np.float64)
    return [int(np.argmin(np.abs(t - float(x)))) for x in times]


def query_times(spec: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(label, time in seconds) of every still image `spec["query"]` names, in the order they are shown.

    >>> query_times({"query": [{"label": "Clip", "times": [1.0, 2.0], "reverse": True}]})
    [('Clip, frame 1', 2.0), ('Clip, frame 2', 1.0)]
    """
    out: list[tuple[str, float]] = []
    for item in spec.get("query") or []:
        times = [float(t) for t in item.get("times", [])]
        if item.get("reverse"):
            times = times[::-1]
        label = str(item.get("label", "Query"))
        out += [(label if len(times) == 1 else f"{label}, frame {k + 1}", t) for k, t in enumerate(times)]
    return out


def query_frames(timestamps: np.ndarray, spec: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(label, frame index) of every still image `spec["query"]` names, in the order they are shown.

    >>> query_frames(np.arange(0, 4.0, 0.5), {"query": [{"label": "Clip", "times": [1.0, 2.0], "reverse": True}]})
    [('Clip, frame 1', 4), ('Clip, frame 2', 2)]
    """
    shown = query_times(spec)
    indices = nearest_frames(timestamps, [t for _, t in shown])
    return [(label, i) for (label, _), i in zip(shown, indices, strict=True)]


def query_images(video: VideoInput, spec: Mapping[str, Any]) -> tuple[tuple[str, np.ndarray], ...]:
    """The labelled still images `spec["query"]` names, cut from the full (unmasked) video."""
    return tuple((label, video.frames[i]) for label, i in query_frames(video.timestamps, spec))
