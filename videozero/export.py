"""Export accepted questions as training data in the row shapes other trainers read.

Every shape carries what its prompt refers to: the query images of the families that show them (the
query frame of grounding, the clips to order, the frames of arrow of time, the option frames of what
next) are written once per frame as PNG files in a folder beside the export (`QueryMedia`) and named by
absolute path in the row's image fields, in the order the prompt mentions them, each after its label
("Clip 2: <image>"), before the video, as the loop shows them to its models.

Shapes (documented with examples in docs/store.md):
- `openrlhf`: `{"prompt": [chat with image, video and text parts], "images": [png], "label": "<json>",
  "video": path}`; read with `--data.input_key prompt --data.label_key label --data.image_key images
  --data.apply_chat_template`.
- `verl`: verl's RL parquet rows (checked against verl 0.9.1's `RLHFDataset`): `data_source`, `prompt`
  (chat whose text has one `<image>` per `images` entry and one `<video>`), `images: [{"image": png}]`,
  `videos: [{"video": path, "fps", "max_frames"}]`, `ability`, `reward_model: {style: rule,
  ground_truth}`, `extra_info`; scored by `solver.external_rewards.compute_score`.
- `easyr1`: `{"problem": "...<image>...<video>...", "answer": "<json>", "images": [png], "videos": [path]}`;
  EasyR1's `data.prompt_key=problem data.answer_key=answer data.image_key=images data.video_key=videos`.
- `trl`: conversational prompt-completion rows (`prompt` with image, video and text parts, `completion`)
  for TRL's SFTTrainer, whose extra columns (`solution`, `evidence`, `answer_kind`) GRPOTrainer passes to
  reward functions (`solver.external_rewards.trl_reward`).

Preference shapes (rows of `store.preferences.list_preferences`: a pair with its question):
- `trl-dpo`: TRL's DPOTrainer conversational preference rows (checked against TRL 1.9's `DPOTrainer` and
  `DataCollatorForVisionPreference`): `prompt` (a user turn whose content is the video as timestamped
  frames, `{"type": "text", "text": "3.0s"}, {"type": "image"}`, then the query images, then the
  question), `chosen` / `rejected` (one assistant turn each), `images` (the PNG files of the prompt's
  image blocks, in order: TRL's DPO takes a video only as frames); plus `video`, `factor`, `source`,
  `question_id`.
- `openrlhf-dpo`: OpenRLHF's `train_dpo` rows (0.11: `--data.prompt_key prompt --data.chosen_key chosen
  --data.rejected_key rejected --data.apply_chat_template`): `prompt` (a user turn, text), `chosen` /
  `rejected` (an assistant turn each); OpenRLHF's DPO is text-only, so the video and query images travel
  in `video` and `images` for a multimodal trainer; plus `factor`, `source`, `question_id`.
verl (0.9) has no offline preference trainer to target: its DPO/SPIN recipes build pairs from their own
rollouts.

Question text is untrusted (a model may write it): the placeholders `<image>`, `<video>` and `<audio>`
inside it are written as `[image]`, `[video]`, `[audio]`, so the placeholders a trainer counts are ours.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from videozero import scoring
from videozero.answer_format import render_answer
from videozero.errors import VideozeroError
from videozero.question_prompt import answer_kind, question_prompt
from videozero.scoring import LABEL_MODES
from videozero.video.cache import VideoCache, load_clip
from videozero.video.decode import MINING_SAMPLING, SamplingConfig, VideoClip
from videozero.video.query_images import query_frames

SHAPES = ("openrlhf", "verl", "easyr1", "trl")
PREFERENCE_SHAPES = ("trl-dpo", "openrlhf-dpo")
_PLACEHOLDER = re.compile(r"<(image|video|audio)>", re.IGNORECASE)


@dataclass(frozen=True)
class VideoSampling:
    """How a trainer that decodes the video itself (verl, through qwen-vl-utils) samples it."""

    fps: float = 2.0
    max_frames: int = 32


def plain(text: str) -> str:
    """`text` with trainers' media placeholders defused.

    >>> plain("What does <video> show? <IMAGE>")
    'What does [video] show? [IMAGE]'
    """
    return _PLACEHOLDER.sub(lambda m: f"[{m.group(1)}]", text)


class QueryMedia:
    """The query images of exported questions, each frame written once as a PNG file under `folder`
    (one sub-folder per video); a clip is decoded once per run of consecutive rows of its video."""

    def __init__(self, folder: Path, cache: VideoCache | None = None) -> None:
        self.folder = Path(folder)
        self.cache = cache
        self._clips: dict[str, VideoClip] = {}

    def __call__(self, row: dict[str, Any]) -> list[tuple[str, str]]:
        """(label, absolute PNG path) of each image the question shows, in the prompt's order."""
        spec = row.get("spec") or {}
        if not spec.get("query"):
            return []
        video = str(row["video"])
        clip = self._clip(video)
        return [(label, self.frame_file(video, clip, i)) for label, i in query_frames(clip.timestamps, spec)]

    def _clip(self, video: str, sampling: SamplingConfig = MINING_SAMPLING) -> VideoClip:
        key = f"{video}#{sampling.key}"
        if key not in self._clips:
            try:
                clip = load_clip(video, sampling, self.cache)
            except (OSError, VideozeroError) as exc:
                raise VideozeroError(
                    f"cannot read {video} to cut its questions' images ({exc}): restore the file "
                    "or export without its questions (--video)."
                ) from None
            self._clips = {key: clip} | (self._clips if len(self._clips) < 4 else {})
        return self._clips[key]

    def video_frames(self, video: str, sampling: SamplingConfig) -> list[tuple[float, str]]:
        """(timestamp, absolute PNG path) of each frame of `video` at `sampling`, for trainers that take a
        video only as images (TRL's DPO), in a sub-folder per sampling."""
        clip = self._clip(video, sampling)
        tag = f"frames-{sampling.fps:g}fps-{sampling.max_frames}"
        return [(float(t), self.frame_file(video, clip, i, tag)) for i, t in enumerate(clip.timestamps)]

    def frame_file(self, video: str, clip: VideoClip, index: int, sampling: str = "") -> str:
        """The PNG file of frame `index` of `clip` (written on first use), in a sub-folder per sampling."""
        tag = hashlib.sha1(video.encode()).hexdigest()[:10]
        path = (
            self.folder
            / f"{Path(video).stem[:40]}-{tag}"
            / (sampling or ".")
            / f"frame_{index:04d}_{clip.timestamps[index]:08.3f}s.png"
        )
        if not path.exists():
            from PIL import Image

            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".frame.", suffix=".png", dir=path.parent)
            os.close(fd)
            try:
                Image.fromarray(np.ascontiguousarray(clip.frames[index])).save(tmp, format="PNG")
                os.replace(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
        return str(path.resolve())


def media_folder(path: Path) -> Path:
    """Where an export at `path` keeps its query images: `<name>_media` beside it."""
    return path.parent / f"{path.stem}_media"


def training_label(row: dict[str, Any], label_mode: str = "auto") -> tuple[str, list[list[float]]]:
    """The answer and evidence a stored question trains on (`scoring.training_label`: constructed for
    template questions, consensus for model-written ones under `auto`)."""
    answer, evidence, _ = scoring.stored_label(row, label_mode)
    return str(answer), [list(span) for span in evidence]


def to_shape(
    row: dict[str, Any],
    shape: str,
    label_mode: str = "auto",
    images: Sequence[tuple[str, str]] = (),
    sampling: VideoSampling = VideoSampling(),
) -> dict[str, Any]:
    """One question row (as `store.queries.list_questions` returns it) in the given trainer's shape, with
    its query images (`QueryMedia`: label and file) where the prompt shows them."""
    answer, evidence = training_label(row, label_mode)
    prompt = plain(question_prompt(row["text"], row.get("options"), row.get("spec")))
    duration = row.get("duration_s")
    label = {
        "question_id": row["id"],
        "family": row["family"],
        "answer": answer,
        "evidence": evidence,
        "answer_kind": answer_kind(row.get("options"), row.get("spec")),
        "options": row.get("options"),
        "duration": None if duration is None else float(duration),
    }
    video = row["video"]
    files = [path for _, path in images]
    # Placeholder text for verl and EasyR1: each image after its label, then the video, then the question.
    placed = "".join(f"{plain(name)}: <image>\n" for name, _ in images) + "<video>\n" + prompt
    if shape in ("openrlhf", "trl"):
        key = "image" if shape == "openrlhf" else "path"
        content: list[dict[str, Any]] = []
        for name, path in images:
            content += [{"type": "text", "text": f"{name}:"}, {"type": "image", key: path}]
        content += [
            {"type": "video", key if shape == "trl" else "video": video},
            {"type": "text", "text": prompt},
        ]
        messages = [{"role": "user", "content": content}]
    if shape == "openrlhf":
        return {"prompt": messages, "images": files, "label": json.dumps(label), "video": video}
    if shape == "verl":
        return {
            "data_source": f"videozero/{row['family']}",
            "prompt": [{"role": "user", "content": placed}],
            "images": [{"image": path} for path in files],
            "videos": [{"video": video, "fps": float(sampling.fps), "max_frames": int(sampling.max_frames)}],
            "ability": "video_grounding",
            "reward_model": {"style": "rule", "ground_truth": json.dumps(label)},
            "extra_info": {
                "question_id": row["id"],
                "split": row.get("split", "train"),
                "level": row["level"],
            },
        }
    if shape == "easyr1":
        return {"problem": placed, "answer": json.dumps(label), "images": files, "videos": [video]}
    if shape == "trl":
        return {
            "prompt": messages,
            "completion": [
                {"role": "assistant", "content": render_answer([tuple(s) for s in evidence], answer)}
            ],
            "solution": answer,
            "evidence": evidence,
            "answer_kind": label["answer_kind"],
            "question_id": row["id"],
        }
    raise VideozeroError(f"Unknown export shape '{shape}': use one of {', '.join(SHAPES)}.")


def write_export(
    rows: Iterable[dict[str, Any]],
    path: Path,
    shape: str,
    label_mode: str = "auto",
    sampling: VideoSampling = VideoSampling(),
    cache: VideoCache | None = None,
) -> int:
    """Write rows in `shape` to `path` (.jsonl or .parquet) atomically, their query images (and for
    `trl-dpo` the videos' frames) under `media_folder(path)`; return how many rows were written. Rows are
    questions for SHAPES, preference pairs for PREFERENCE_SHAPES."""
    if shape not in SHAPES + PREFERENCE_SHAPES:
        raise VideozeroError(
            f"Unknown export shape '{shape}': use one of {', '.join(SHAPES + PREFERENCE_SHAPES)}."
        )
    if label_mode not in LABEL_MODES:
        raise VideozeroError(f"Unknown label mode '{label_mode}': use one of {', '.join(LABEL_MODES)}.")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".parquet"):
        raise VideozeroError(
            f"Cannot tell the export format from '{path.name}': name the file .jsonl or .parquet."
        )
    if path.is_dir():
        raise VideozeroError(f"{path} is a directory: give a file name ending in .jsonl or .parquet.")
    media = QueryMedia(media_folder(path), cache)
    if shape in PREFERENCE_SHAPES:
        frames = SamplingConfig(fps=sampling.fps, max_frames=sampling.max_frames)
        records = [
            to_preference_shape(
                r, shape, media(r), media.video_frames(str(r["video"]), frames) if shape == "trl-dpo" else ()
            )
            for r in rows
        ]
    else:
        records = [to_shape(r, shape, label_mode, media(r), sampling) for r in rows]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise VideozeroError(
            f"cannot write the export next to {path} ({exc.strerror}): choose a writable directory."
        ) from None
    os.close(fd)
    try:
        if suffix == ".jsonl":
            with open(tmp, "w", encoding="utf-8") as f:
                for rec in records:
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
        else:
            _write_parquet(records, Path(tmp))
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise VideozeroError(
            f"writing the export to {path} failed ({exc.strerror}); nothing was written: free space or "
            "choose another path."
        ) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(records)


def _write_parquet(records: Sequence[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not records:
        pq.write_table(pa.table({}), path)
        return
    # Free-form values (a list of lists, option lists that may be null) travel as columns pyarrow infers.
    pq.write_table(pa.Table.from_pylist(list(records)), path)


def to_preference_shape(
    row: dict[str, Any],
    shape: str,
    images: Sequence[tuple[str, str]] = (),
    frames: Sequence[tuple[float, str]] = (),
) -> dict[str, Any]:
    """One preference pair (a `list_preferences` row) in a preference trainer's shape, with its query
    images and, for TRL, the video's frames (`QueryMedia.video_frames`: timestamp and file)."""
    prompt = plain(question_prompt(row["text"], row.get("options"), row.get("spec")))
    extra = {
        "question_id": row["id"],
        "factor": row["factor"],
        "source": row["source"],
    }
    if shape == "trl-dpo":
        content: list[dict[str, Any]] = []
        for t, _ in frames:
            content += [{"type": "text", "text": f"{t:.1f}s"}, {"type": "image"}]
        for name, _ in images:
            content += [{"type": "text", "text": f"{name}:"}, {"type": "image"}]
        content.append({"type": "text", "text": prompt})
        return {
            "prompt": [{"role": "user", "content": content}],
            "chosen": [{"role": "assistant", "content": [{"type": "text", "text": row["chosen"]}]}],
            "rejected": [{"role": "assistant", "content": [{"type": "text", "text": row["rejected"]}]}],
            "images": [path for _, path in frames] + [path for _, path in images],
            "video": row["video"],
        } | extra
    if shape == "openrlhf-dpo":
        return {
            "prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": row["chosen"]}],
            "rejected": [{"role": "assistant", "content": row["rejected"]}],
            "video": row["video"],
            "images": [path for _, path in images],
        } | extra
    raise VideozeroError(f"Unknown preference shape '{shape}': use one of {', '.join(PREFERENCE_SHAPES)}.")
