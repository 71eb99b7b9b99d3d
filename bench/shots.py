"""Shot boundary quality on real video: precision / recall / F1 of cuts within ±0.5 s.

Run: python bench/shots.py [--fps 2]
References: the cut list shipped with testvideo.mp4 (testvideo_scenes.csv), and PySceneDetect's own
full-rate pass (ContentDetector, defaults) on testvideo.mp4 and bbb_first180s_360p.mp4. Methods, all on
the frames mining samples (2 fps by default):
- `mining`: what `videozero mine` uses (PySceneDetect's content score, adaptive rule; evidence/shots.py);
- `content`: PySceneDetect's plain ContentDetector threshold (27, its default) on the sampled frames;
- `embedding`: change points of the EfficientNet-Lite0 embedding (cosine distance to the next frame
  over 3x the median of 4 neighbours each side, and over 0.2): the alternative that was measured.
Prints figures; never asserts them.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REAL = ROOT.parent / "shared" / "videos" / "real"
TOLERANCE_S = 0.5


def match(pred: list[float], ref: list[float], tol: float = TOLERANCE_S) -> tuple[float, float, float]:
    """Precision, recall, F1 of predicted cut times against reference ones, one-to-one within `tol`."""
    used: set[int] = set()
    hits = 0
    for p in sorted(pred):
        near = [i for i, r in enumerate(ref) if i not in used and abs(r - p) <= tol]
        if near:
            used.add(min(near, key=lambda i: abs(ref[i] - p)))
            hits += 1
    precision = hits / len(pred) if pred else 1.0
    recall = hits / len(ref) if ref else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def csv_cuts(path: Path) -> list[float]:
    """Cut times (s) from a PySceneDetect scene list CSV: every scene start but the first."""
    with path.open() as f:
        rows = [r for r in csv.reader(f) if r and r[0].strip().isdigit()]
    return [float(r[3]) / 1000 for r in rows if int(r[0]) > 0]


def pyscenedetect_cuts(path: Path) -> tuple[list[float], float]:
    from scenedetect import ContentDetector, detect

    started = time.perf_counter()
    scenes = detect(str(path), ContentDetector())
    return [s[0].seconds for s in scenes[1:]], time.perf_counter() - started


def embedding_cuts(
    pooled: np.ndarray, ts: np.ndarray, k: float = 3.0, floor: float = 0.2, w: int = 4
) -> list[float]:
    d = 1.0 - (pooled[1:] * pooled[:-1]).sum(1)
    cuts = []
    for i in range(len(d)):
        around = np.r_[d[max(0, i - w) : i], d[i + 1 : i + 1 + w]]
        if d[i] > floor and d[i] > k * (np.median(around) if len(around) else 0.0):
            cuts.append(float(ts[i] + ts[i + 1]) / 2)
    return cuts


def content_cuts(frames: np.ndarray, ts: np.ndarray) -> list[float]:
    from videozero.evidence.shots import content_scores

    scores = content_scores(frames)
    return [float(ts[i - 1] + ts[i]) / 2 for i in range(1, len(ts)) if scores[i] >= 27.0]


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from videozero.evidence.features import compute_features
    from videozero.evidence.mine import DEFAULT_SAMPLING
    from videozero.evidence.shots import detect_shots
    from videozero.video.decode import decode_video

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fps", type=float, default=DEFAULT_SAMPLING.fps)
    args = parser.parse_args()
    if not REAL.is_dir():
        raise SystemExit(f"{REAL} is absent: the shared sample videos are needed")
    sampling = DEFAULT_SAMPLING.model_copy(update={"fps": args.fps})
    console = Console(width=150)
    table = Table(title=f"shot boundaries, ±{TOLERANCE_S} s, sampled at {sampling.key}")
    for col in ("video", "reference", "ref cuts", "method", "cuts", "precision", "recall", "F1"):
        table.add_column(col, justify="left" if col in ("video", "reference", "method") else "right")
    for name in ("testvideo.mp4", "bbb_first180s_360p.mp4"):
        path = REAL / name
        psd, psd_s = pyscenedetect_cuts(path)
        refs = {"PySceneDetect full pass": psd}
        if name == "testvideo.mp4":
            refs = {"testvideo_scenes.csv": csv_cuts(REAL / "testvideo_scenes.csv"), **refs}
        clip = decode_video(path, sampling)
        feats = compute_features(clip)
        methods = {
            "mining (content score, adaptive)": [
                s.start_s for s in detect_shots(clip.frames, clip.timestamps, clip.duration_s)[1:]
            ],
            "content threshold 27": content_cuts(clip.frames, clip.timestamps),
            "embedding change points": embedding_cuts(feats.pooled, clip.timestamps),
        }
        for ref_name, ref in refs.items():
            rows = dict(methods)
            if ref_name != "PySceneDetect full pass":
                rows["PySceneDetect full pass"] = psd
            for method, cuts in rows.items():
                p, r, f1 = match(cuts, ref)
                table.add_row(
                    name, ref_name, str(len(ref)), method, str(len(cuts)), f"{p:.2f}", f"{r:.2f}", f"{f1:.2f}"
                )
            table.add_section()
        console.print(f"{name}: PySceneDetect full pass {psd_s:.1f} s; its cuts {[round(c, 2) for c in psd]}")
    console.print(table)


if __name__ == "__main__":
    main()
