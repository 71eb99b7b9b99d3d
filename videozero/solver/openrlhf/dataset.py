"""A round's accepted questions as an OpenRLHF prompt dataset (JSONL) with the frames saved as images.

Mainline OpenRLHF passes images to VLMs, not video. Each question's clip is sampled (true timestamps),
its frames are written as PNG files, and the prompt interleaves `Frame at <t> s:` text with one image
entry per frame, so the timestamps the model needs are in the text; a question's query images (the
query frame, the clips to order, the option frames) come first, each after its label. Rows:

    {"prompt": [{"role": "user", "content": [{"type": "text", "text": "Frame at 0.0 s:"},
                                             {"type": "image", "image": "<png>"}, ...,
                                             {"type": "text", "text": "<question, options, format>"}]}],
     "images": ["<png>", ...],
     "label": "{\"answer\": \"B\", \"evidence\": [[1.0, 2.0]], \"answer_kind\": \"option\", ...}"}

read with `--data.input_key prompt --data.label_key label --data.image_key images
--data.apply_chat_template --data.max_images_per_prompt <frames>`. The label is JSON carrying the
training answer and evidence span (`export.training_label` picks constructed or consensus) and what the
reward needs (answer kind, duration).

Sending frames as images also keeps OpenRLHF off its video-only input path, where `Actor.forward` passes
`token_type_ids` instead of `mm_token_type_ids` (see `mm_inputs.py` for the guard on our side).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from videozero.errors import VideozeroError
from videozero.export import QueryMedia, training_label
from videozero.question_prompt import answer_kind, question_prompt
from videozero.scoring import LABEL_MODES

INPUT_KEY, LABEL_KEY, IMAGE_KEY = "prompt", "label", "images"


def frame_text(t: float) -> str:
    """The text that precedes a frame's image.

    >>> frame_text(1.25)
    'Frame at 1.2 s:'
    """
    return f"Frame at {t:.1f} s:"


def save_frames(frames: np.ndarray, times: np.ndarray, folder: Path) -> list[str]:
    """Write uint8 [T, H, W, 3] frames as PNG files named by index and time; return their paths."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (frame, t) in enumerate(zip(frames, times, strict=True)):
        path = folder / f"frame_{i:03d}_{t:08.3f}s.png"
        Image.fromarray(np.ascontiguousarray(frame)).save(path)
        paths.append(str(path.resolve()))
    return paths


def openrlhf_row(
    row: dict[str, Any],
    images: list[str],
    times: np.ndarray,
    label_mode: str = "auto",
    query: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """One question row (as `store.queries.list_questions` returns it) with its video's saved frames,
    after the question's query images (`export.QueryMedia`: label and file), as the loop shows them."""
    answer, evidence = training_label(row, label_mode)
    content: list[dict[str, Any]] = []
    for name, path in query:
        content.append({"type": "text", "text": f"{name}:"})
        content.append({"type": "image", "image": path})
    for t, path in zip(times, images, strict=True):
        content.append({"type": "text", "text": frame_text(float(t))})
        content.append({"type": "image", "image": path})
    content.append(
        {"type": "text", "text": question_prompt(row["text"], row.get("options"), row.get("spec"))}
    )
    duration = row.get("duration_s")
    label = {
        "question_id": row["id"],
        "family": row.get("family"),
        "answer": answer,
        "evidence": [list(map(float, s)) for s in evidence],
        "answer_kind": answer_kind(row.get("options"), row.get("spec")),
        "duration": float(duration) if duration is not None else None,
    }
    return {
        INPUT_KEY: [{"role": "user", "content": content}],
        IMAGE_KEY: [path for _, path in query] + images,
        LABEL_KEY: json.dumps(label),
    }


def export_openrlhf(
    rows: Iterable[dict[str, Any]],
    out: str | Path,
    sampling=None,
    label_mode: str = "auto",
) -> tuple[Path, int, int]:
    """Write `rows` as an OpenRLHF prompt dataset at `out` (a .jsonl path; images beside it).

    Returns (path, rows written, most frames in one prompt: pass it as --data.max_images_per_prompt).
    """
    from videozero.video.decode import SamplingConfig, decode_video

    if label_mode not in LABEL_MODES:
        raise VideozeroError(f"Unknown label mode '{label_mode}': use one of {', '.join(LABEL_MODES)}.")
    out = Path(out)
    if out.suffix.lower() != ".jsonl":
        raise VideozeroError(f"OpenRLHF reads its prompt dataset as JSON lines: name '{out.name}' *.jsonl.")
    sampling = sampling or SamplingConfig(fps=2.0, max_frames=32, short_side=448)
    image_dir = out.parent / f"{out.stem}_frames"
    media = QueryMedia(image_dir / "query")
    records = []
    most = 0
    # Many questions share a video: decode it and write its frames once.
    saved: dict[str, tuple[list[str], np.ndarray, float]] = {}
    for row in rows:
        video = str(row["video"])
        if video not in saved:
            clip = decode_video(video, sampling)
            folder = image_dir / f"v{len(saved):05d}_{Path(video).stem}"
            saved[video] = (
                save_frames(clip.frames, clip.timestamps, folder),
                clip.timestamps,
                clip.duration_s,
            )
        images, times, duration = saved[video]
        query = media(row)
        records.append(
            openrlhf_row(
                dict(row, duration_s=row.get("duration_s") or duration), images, times, label_mode, query
            )
        )
        most = max(most, len(images) + len(query))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out, len(records), most
