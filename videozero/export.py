"""Export accepted questions as training data in the row shapes other trainers read.

Shapes (documented with examples in docs/store.md):
- `openrlhf`: `{"prompt": [chat], "label": "<json>", "video": path}`; read with
  `--data.input_key prompt --data.label_key label --data.apply_chat_template`.
- `verl`: verl's RL parquet rows: `data_source`, `prompt` (chat with a `<video>` placeholder),
  `videos`, `ability`, `reward_model: {style: rule, ground_truth}`, `extra_info`; verl scores them with
  `solver.external_rewards.compute_score`.
- `easyr1`: `{"problem": "<video>...", "answer": "<json>", "videos": [path]}`; EasyR1's
  `data.prompt_key=problem data.answer_key=answer data.video_key=videos`.
- `trl`: conversational prompt-completion rows (`prompt`, `completion`) for TRL's SFTTrainer, whose
  extra columns (`solution`, `evidence`, `answer_kind`) GRPOTrainer passes to reward functions
  (`solver.external_rewards.trl_reward`).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from videozero import scoring
from videozero.answer_format import render_answer
from videozero.errors import VideozeroError
from videozero.question_prompt import answer_kind, question_prompt
from videozero.scoring import LABEL_MODES

SHAPES = ("openrlhf", "verl", "easyr1", "trl")


def training_label(row: dict[str, Any], label_mode: str = "auto") -> tuple[str, list[list[float]]]:
    """The answer and evidence a stored question trains on (`scoring.training_label`: constructed for
    template questions, consensus for model-written ones under `auto`)."""
    answer, evidence, _ = scoring.training_label(
        row.get("answer"),
        row.get("evidence") or [],
        row.get("consensus_answer"),
        row.get("consensus_evidence"),
        str(row.get("writer") or "template"),
        label_mode,
    )
    return str(answer), [list(span) for span in evidence]


def to_shape(row: dict[str, Any], shape: str, label_mode: str = "auto") -> dict[str, Any]:
    """One question row (as `store.queries.list_questions` returns it) in the given trainer's shape."""
    answer, evidence = training_label(row, label_mode)
    prompt = question_prompt(row["text"], row.get("options"), row.get("spec"))
    label = {
        "question_id": row["id"],
        "family": row["family"],
        "answer": answer,
        "evidence": evidence,
        "answer_kind": answer_kind(row.get("options"), row.get("spec")),
        "options": row.get("options"),
    }
    video = row["video"]
    if shape == "openrlhf":
        return {"prompt": [{"role": "user", "content": prompt}], "label": json.dumps(label), "video": video}
    if shape == "verl":
        return {
            "data_source": f"videozero/{row['family']}",
            "prompt": [{"role": "user", "content": "<video>" + prompt}],
            "videos": [{"video": video}],
            "ability": "video_grounding",
            "reward_model": {"style": "rule", "ground_truth": json.dumps(label)},
            "extra_info": {
                "question_id": row["id"],
                "split": row.get("split", "train"),
                "level": row["level"],
            },
        }
    if shape == "easyr1":
        return {"problem": "<video>" + prompt, "answer": json.dumps(label), "videos": [video]}
    if shape == "trl":
        return {
            "prompt": [
                {
                    "role": "user",
                    "content": [{"type": "video", "path": video}, {"type": "text", "text": prompt}],
                }
            ],
            "completion": [
                {"role": "assistant", "content": render_answer([tuple(s) for s in evidence], answer)}
            ],
            "solution": answer,
            "evidence": evidence,
            "answer_kind": label["answer_kind"],
            "question_id": row["id"],
        }
    raise VideozeroError(f"Unknown export shape '{shape}': use one of {', '.join(SHAPES)}.")


def write_export(rows: Iterable[dict[str, Any]], path: Path, shape: str, label_mode: str = "auto") -> int:
    """Write rows in `shape` to `path` (.jsonl or .parquet) atomically; return how many were written."""
    if shape not in SHAPES:
        raise VideozeroError(f"Unknown export shape '{shape}': use one of {', '.join(SHAPES)}.")
    if label_mode not in LABEL_MODES:
        raise VideozeroError(f"Unknown label mode '{label_mode}': use one of {', '.join(LABEL_MODES)}.")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".parquet"):
        raise VideozeroError(
            f"Cannot tell the export format from '{path.name}': name the file .jsonl or .parquet."
        )
    if path.is_dir():
        raise VideozeroError(f"{path} is a directory: give a file name ending in .jsonl or .parquet.")
    records = [to_shape(r, shape, label_mode) for r in rows]
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
