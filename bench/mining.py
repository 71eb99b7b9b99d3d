"""Mining speed: video-seconds mined per wall-second at the default settings, against decoding the same
frames only (the floor) and a full PySceneDetect pass (what a user would run instead); peak memory.

Run: python bench/mining.py [VIDEO ...] [--repeat 2]
(default videos: bbb_first180s_360p.mp4 and one-by-one-person-detection.mp4 from ../shared/videos/real)
Each measurement runs in its own process (so its peak memory is its own), after the frame encoder is
loaded and warmed up; the best of --repeat runs is kept, each on an empty store and cache. Prints
figures; never asserts them. Target on 2 cores: mining >= 30x real time at 2 fps, <= 2x decode-only.
CPU time is printed beside wall time: on shared cores, wall time depends on what else runs. The mine
row also says how many of the sampled frames the encoder ran on (the others reused the features of a
near-identical frame; see videozero/evidence/features.py).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL = ROOT.parent / "shared" / "videos" / "real"
DEFAULT_VIDEOS = [REAL / "bbb_first180s_360p.mp4", REAL / "one-by-one-person-detection.mp4"]
MODES = ("decode", "mine", "pyscenedetect")


def measure(mode: str, path: Path, repeat: int) -> dict[str, float]:
    """Run one mode on one video `repeat` times in this process; the fastest run's figures."""
    import numpy as np

    from store import open_store
    from videozero.evidence.mine import DEFAULT_SAMPLING
    from videozero.stages.mine import mine_videos
    from videozero.video.decode import decode_video
    from videozero.video.frame_encoder import frame_encoder

    if mode == "mine":
        started = time.perf_counter()
        frame_encoder().pooled_and_logits(np.zeros((4, 64, 64, 3), np.uint8), 128)
        warmup = time.perf_counter() - started
    best: dict[str, float] = {}
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            wall, cpu = time.perf_counter(), time.process_time()
            if mode == "decode":
                clip = decode_video(path, DEFAULT_SAMPLING)
                duration, extra = clip.duration_s, {"frames": len(clip)}
            elif mode == "mine":
                store = open_store(f"sqlite:///{tmp}/s.db")
                result = mine_videos(store, [path], DEFAULT_SAMPLING, cache_dir=Path(tmp) / "cache").results[
                    0
                ]
                store.dispose()
                if result.status != "mined":
                    raise SystemExit(f"{path}: {result.error}")
                duration, extra = (
                    result.duration_s or 0.0,
                    {"shots": result.shots, "segments": result.segments, **encoded_frames(path, Path(tmp))},
                )
            else:
                from scenedetect import ContentDetector, detect

                scenes = detect(str(path), ContentDetector())
                duration, extra = 0.0, {"shots": max(1, len(scenes))}  # no cut: one scene, reported as []
            figures = {
                "wall_s": time.perf_counter() - wall,
                "cpu_s": time.process_time() - cpu,
                "video_s": duration,
            }
        if not best or figures["wall_s"] < best["wall_s"]:
            best = {**figures, **extra}
    best["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if mode == "mine":
        best["encoder_warmup_s"] = warmup
    return best


def encoded_frames(path: Path, tmp: Path) -> dict[str, int]:
    """How many of the mined frames the encoder ran on (the others reused a near-identical frame's
    features), read back from the features cache entry mining wrote."""
    from videozero.evidence.features import FrameFeatures, features_entry
    from videozero.evidence.mine import DEFAULT_SAMPLING
    from videozero.video.cache import VideoCache, file_sha256

    arrays = VideoCache(tmp / "cache").load(file_sha256(path), DEFAULT_SAMPLING, features_entry())
    feats = FrameFeatures.from_arrays(arrays) if arrays is not None else None
    if feats is None:
        return {}
    return {"encoded": int((feats.source == range(len(feats))).sum()), "frames": len(feats)}


def run_child(mode: str, path: Path, repeat: int) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", mode, "--repeat", str(repeat), str(path)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{mode} on {path.name} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path, default=DEFAULT_VIDEOS)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", choices=MODES)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.videos[0], args.repeat)))
        return
    from rich.console import Console
    from rich.table import Table

    missing = [str(v) for v in args.videos if not v.is_file()]
    if missing:
        raise SystemExit(f"missing videos: {', '.join(missing)} (the shared sample videos)")
    console = Console(width=150)
    load = os.getloadavg()[0]
    console.print(
        f"{os.cpu_count()} cores, load average {load:.1f} at start (others' work shares these cores)"
    )
    table = Table(title=f"mining speed (best of {args.repeat}; x = video-seconds per wall-second)")
    for col in (
        "video",
        "what",
        "frames/shots/segs/encoded",
        "wall s",
        "cpu s",
        "x real time",
        "vs decode",
        "peak MiB",
    ):
        table.add_column(col, justify="left" if col in ("video", "what") else "right")
    for video in args.videos:
        res = {mode: run_child(mode, video, args.repeat) for mode in MODES}
        floor, duration = res["decode"]["wall_s"], res["decode"]["video_s"]
        for mode in MODES:
            r = res[mode]
            counts = {
                "decode": f"{int(r.get('frames', 0))} frames",
                "mine": f"{int(r.get('shots', 0))} shots, {int(r.get('segments', 0))} segs, "
                f"{int(r.get('encoded', 0))}/{int(r.get('frames', 0))} encoded",
                "pyscenedetect": f"{int(r.get('shots', 0))} shots",
            }[mode]
            label = {
                "decode": "decode only (floor)",
                "mine": "mine (default)",
                "pyscenedetect": "PySceneDetect full pass",
            }
            table.add_row(
                video.name,
                label[mode],
                counts,
                f"{r['wall_s']:.2f}",
                f"{r['cpu_s']:.2f}",
                f"{duration / r['wall_s']:.1f}",
                f"{r['wall_s'] / floor:.2f}",
                f"{r['peak_rss_mib']:.0f}",
            )
        table.add_section()
        console.print(
            f"{video.name}: encoder load + warm-up before mining {res['mine']['encoder_warmup_s']:.1f} s (once per process)"
        )
    console.print(table)
    console.print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
