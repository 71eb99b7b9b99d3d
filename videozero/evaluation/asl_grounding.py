"""A temporal grounding benchmark from real video with real labels: concatenated sign-language clips.

Each source clip shows one American Sign Language sign, and its file name is the sign. A built video is
`k` different clips in a seeded random order, re-encoded into one stream (one codec, size and frame rate
for all, no B-frames), so frame `i` is shown at exactly `i / fps` and each sign's span is known exactly
from the frame counts. Every item asks "when is the sign for X shown?" with a query clip of X.

The query clip. Only one recording of each sign exists, so the query is necessarily the same recording;
what the design controls is where it comes from. Videos are built in pairs with the same signs in two
orders chosen so that every sign's span in one video is disjoint in time from its span in the other,
and an item's query is its sign's span in the partner video (`query_video`, `query_span`). So the query
is encoded exactly like the target (no codec cue), and copying the query clip's own times scores IoU 0.
With an odd number of videos the last one joins the first pair and takes its queries from video 0.

Nothing built is committed: `python -m videozero.evaluation.asl_grounding [--out DIR]` writes
`DIR/videos/asl_NNN.mp4`, `DIR/items.jsonl` and `DIR/manifest.json` (default DIR:
`<work dir>/benchmarks/asl_grounding`).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from videozero.errors import VideozeroError
from videozero.evaluation.benchmarks import GroundingItem, load_items
from videozero.video.decode import VIDEO_SUFFIXES
from videozero.workdir import workdir_default

BENCHMARK = "asl_grounding"
DEFAULT_CLIPS_DIR = Path(__file__).resolve().parents[3] / "shared" / "videos" / "real" / "asl_gestures"


class AslBuildConfig(BaseModel):
    """How the benchmark is built; the defaults make 8 videos of 6 signs (about 14 s each) in seconds."""

    n_videos: int = Field(
        8, ge=2, le=1000, description="concatenated videos to write (at least 2: they pair up)"
    )
    clips_per_video: int = Field(6, ge=3, le=20, description="different signs per video")
    seed: int = Field(0, description="seed of the sign choice and order")
    fps: int = Field(30, ge=1, le=60, description="frame rate of every built video")
    short_side: int = Field(240, ge=64, le=1080, description="frames resized so the short side is this")
    crf: int = Field(23, ge=0, le=51, description="libx264 quality (lower is better)")


@dataclass(frozen=True)
class Placement:
    """One sign inside one built video: its position, first frame and frame count."""

    sign: str
    position: int
    first_frame: int
    n_frames: int

    def span(self, fps: int) -> tuple[float, float]:
        return (self.first_frame / fps, (self.first_frame + self.n_frames) / fps)


# --- planning (pure) -----------------------------------------------------------------------------------


def _placements(order: Sequence[str], n_frames: dict[str, int]) -> list[Placement]:
    out, first = [], 0
    for pos, sign in enumerate(order):
        out.append(Placement(sign, pos, first, n_frames[sign]))
        first += n_frames[sign]
    return out


def _disjoint(a: Sequence[Placement], b: Sequence[Placement]) -> bool:
    """Every sign's frames in `a` and in `b` do not overlap in time."""
    where = {p.sign: p for p in b}
    return all(
        p.first_frame + p.n_frames <= where[p.sign].first_frame
        or where[p.sign].first_frame + where[p.sign].n_frames <= p.first_frame
        for p in a
    )


def plan_videos(
    n_frames: dict[str, int], n_videos: int, clips_per_video: int, seed: int
) -> tuple[list[list[str]], list[int]]:
    """Sign orders of each video and, for each video, the video its queries come from.

    Videos pair up (0, 1), (2, 3), ...; a pair shares its signs, and the second order is drawn until
    every sign's span is disjoint from its span in the first. An odd last video joins pair (0, 1) with
    an order of its own (also disjoint from video 0's).

    >>> frames = {s: 60 + 5 * i for i, s in enumerate("abcdefgh")}
    >>> orders, partner = plan_videos(frames, 3, 4, seed=0)
    >>> partner, sorted(orders[0]) == sorted(orders[1]) == sorted(orders[2])
    ([1, 0, 0], True)
    """
    if n_videos < 2:
        raise VideozeroError("the ASL benchmark needs at least 2 videos: queries come from a partner video.")
    signs = sorted(n_frames)
    if clips_per_video > len(signs):
        raise VideozeroError(
            f"{clips_per_video} clips per video asked but only {len(signs)} signs exist: lower --clips-per-video."
        )
    rng = random.Random(seed)
    orders: list[list[str]] = [[] for _ in range(n_videos)]
    partner = [0] * n_videos
    groups = [[j, j + 1] for j in range(0, n_videos - 1, 2)]
    if n_videos % 2:
        groups[0].append(n_videos - 1)
    for group in groups:
        for _attempt in range(100):
            chosen = rng.sample(signs, clips_per_video)
            first = _placements(chosen, n_frames)
            others = []
            for _member in group[1:]:
                for _try in range(500):
                    order = rng.sample(chosen, len(chosen))
                    if order not in others and _disjoint(first, _placements(order, n_frames)):
                        others.append(order)
                        break
            if len(others) == len(group) - 1:
                break
        else:
            raise VideozeroError(
                f"no two orders of {clips_per_video} signs keep every sign's spans apart: use more clips per video."
            )
        orders[group[0]] = chosen
        partner[group[0]] = group[1]
        for member, order in zip(group[1:], others, strict=True):
            orders[member] = order
            partner[member] = group[0]
    return orders, partner


# --- decoding and encoding -----------------------------------------------------------------------------


def list_clips(clips_dir: Path) -> dict[str, Path]:
    """Sign -> clip file (the file name is the sign)."""
    clips_dir = Path(clips_dir)
    if not clips_dir.is_dir():
        raise VideozeroError(f"{clips_dir} is not a folder: pass the folder of sign clips with --clips.")
    clips = {p.stem: p for p in sorted(clips_dir.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES}
    if len(clips) < 3:
        raise VideozeroError(f"{clips_dir} holds {len(clips)} video clips; at least 3 are needed.")
    return clips


def _even_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    scale = short_side / min(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def read_clip(path: Path, fps: int, short_side: int) -> list[Any]:
    """The clip's frames (yuv420p `av.VideoFrame`s at the working size) resampled to `fps` by time:
    output frame k shows the source frame on screen at k / fps; the count is round(duration * fps)."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or fps)
            size = _even_size(stream.codec_context.width, stream.codec_context.height, short_side)
            frames, times = [], []
            for frame in container.decode(stream):
                times.append(float(frame.time) if frame.time is not None else len(times) / rate)
                frames.append(frame.reformat(width=size[0], height=size[1], format="yuv420p"))
    except (av.FFmpegError, OSError, IndexError) as exc:
        raise VideozeroError(f"{path} could not be decoded ({exc}): replace the clip.") from None
    if not frames:
        raise VideozeroError(f"{path} holds no video frames: replace the clip.")
    rel = np.asarray(times) - times[0]
    duration = rel[-1] + 1.0 / rate
    n_out = max(1, round(duration * fps))
    pick = np.searchsorted(rel, np.arange(n_out) / fps + 1e-6, side="right") - 1
    return [frames[i] for i in np.clip(pick, 0, len(frames) - 1)]


def count_frames(path: Path, fps: int) -> int:
    """How many frames `read_clip` gives for `path` at `fps` (without converting pixels)."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate or fps)
            times = [float(f.time) for f in container.decode(stream) if f.time is not None]
    except (av.FFmpegError, OSError, IndexError) as exc:
        raise VideozeroError(f"{path} could not be decoded ({exc}): replace the clip.") from None
    if not times:
        raise VideozeroError(f"{path} holds no video frames: replace the clip.")
    return max(1, round((times[-1] - times[0] + 1.0 / rate) * fps))


def write_video(frames: Sequence[Any], path: Path, fps: int, crf: int) -> None:
    """Encode frames with H.264 (no B-frames, so presentation order is decode order) into MP4, frame i
    stamped i / fps; written to a temporary name and renamed, so a file that exists is complete."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".partial.mp4")
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].width, frames[0].height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        stream.options = {"crf": str(crf), "preset": "veryfast", "bf": "0", "g": str(fps)}
        for k, frame in enumerate(frames):
            frame.pts, frame.time_base = k, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    tmp.replace(path)


# --- building ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AslBenchmark:
    """What a build wrote: the items file, the videos folder, and the items."""

    items_path: Path
    videos_dir: Path
    items: list[GroundingItem]


def default_out_dir() -> Path:
    """`<work dir>/benchmarks/asl_grounding` (the work dir is $VIDEOZERO_WORKDIR or ./videozero_work)."""
    return workdir_default() / "benchmarks" / BENCHMARK


def _refuse_repo_path(out_dir: Path) -> None:
    """Built files never land in the repository's tracked tree (the git-ignored work dir is fine)."""
    repo, out = Path(__file__).resolve().parents[2], out_dir.resolve()
    if out.is_relative_to(repo) and not out.is_relative_to(workdir_default().resolve()):
        raise VideozeroError(
            f"{out_dir} lies inside the repository: build the benchmark in the work dir or elsewhere "
            "(nothing built is committed)."
        )


def video_name(index: int) -> str:
    return f"asl_{index:03d}"


def build_asl_grounding(
    out_dir: Path, clips_dir: Path = DEFAULT_CLIPS_DIR, config: AslBuildConfig | None = None
) -> AslBenchmark:
    """Write the concatenated videos, items.jsonl and manifest.json into `out_dir`."""
    config = config or AslBuildConfig()
    out_dir = Path(out_dir)
    _refuse_repo_path(out_dir)
    clips = list_clips(clips_dir)
    n_frames = {sign: count_frames(path, config.fps) for sign, path in clips.items()}
    orders, partner = plan_videos(n_frames, config.n_videos, config.clips_per_video, config.seed)
    placements = [_placements(order, n_frames) for order in orders]
    videos_dir = out_dir / "videos"
    cache: dict[str, list[Any]] = {}
    for j, order in enumerate(orders):
        frames = []
        for sign in order:
            if sign not in cache:
                cache[sign] = read_clip(clips[sign], config.fps, config.short_side)
                if len(cache[sign]) != n_frames[sign]:  # the spans are computed from n_frames
                    raise VideozeroError(
                        f"{clips[sign]} decodes differently on a second pass: replace the clip."
                    )
            frames.extend(cache[sign])
        write_video(frames, videos_dir / f"{video_name(j)}.mp4", config.fps, config.crf)
    rows = []
    for j, places in enumerate(placements):
        duration = sum(p.n_frames for p in places) / config.fps
        query_places = {p.sign: p for p in placements[partner[j]]}
        for p in places:
            q = query_places[p.sign]
            rows.append(
                {
                    "item_id": f"{video_name(j)}_{p.position}",
                    "video_id": video_name(j),
                    "sign": p.sign,
                    "gt_span": list(p.span(config.fps)),
                    "duration": duration,
                    "position": p.position,
                    "query_video": video_name(partner[j]),
                    "query_span": list(q.span(config.fps)),
                    "query_position": q.position,
                }
            )
    items_path = out_dir / "items.jsonl"
    items_path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    manifest = {
        "benchmark": BENCHMARK,
        "config": config.model_dump(),
        "clips_dir": str(Path(clips_dir).resolve()),
        "clip_frames": n_frames,
        "videos": [
            {
                "video_id": video_name(j),
                "signs": orders[j],
                "query_source": video_name(partner[j]),
                "n_frames": sum(p.n_frames for p in placements[j]),
            }
            for j in range(len(orders))
        ],
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return AslBenchmark(items_path, videos_dir, load_items(items_path))


def query_clip(item: GroundingItem, sampling: Any = None) -> Any:
    """The item's query clip as a `VideoClip`: the partner video's frames inside `query_span`, with
    timestamps shifted to start at 0 (the query's own position must not leak)."""
    from dataclasses import replace

    from videozero.video.decode import decode_video

    s, e = item.extra["query_span"]
    clip = decode_video(item.extra["query_video_path"], sampling)
    keep = (clip.timestamps >= s - 1e-6) & (clip.timestamps < e - 1e-6)
    return replace(
        clip,
        frames=clip.frames[keep],
        timestamps=np.maximum(clip.timestamps[keep] - s, 0.0),
        indices=clip.indices[keep],
        duration_s=e - s,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m videozero.evaluation.asl_grounding --out DIR [--clips DIR] [--videos N] ...`"""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=None, help="output folder (default: <work dir>/benchmarks/asl_grounding)"
    )
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS_DIR, help="folder of sign clips")
    parser.add_argument("--videos", type=int, default=AslBuildConfig().n_videos, help="videos to build")
    parser.add_argument("--clips-per-video", type=int, default=AslBuildConfig().clips_per_video)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fps", type=int, default=AslBuildConfig().fps)
    parser.add_argument("--short-side", type=int, default=AslBuildConfig().short_side)
    args = parser.parse_args(argv)
    try:
        config = AslBuildConfig(
            n_videos=args.videos,
            clips_per_video=args.clips_per_video,
            seed=args.seed,
            fps=args.fps,
            short_side=args.short_side,
        )
        built = build_asl_grounding(args.out or default_out_dir(), args.clips, config)
    except VideozeroError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        err = exc.errors()[0]
        flag = {"n_videos": "videos"}.get(str(err["loc"][0]), str(err["loc"][0])).replace("_", "-")
        print(f"error: --{flag}: {err['msg'].lower()}.", file=sys.stderr)
        return 2
    print(f"{len(built.items)} items in {built.items_path}; videos in {built.videos_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
