"""A solver round on an external trainer (`solver.backend: verl | openrlhf`): the round's accepted
questions are exported in the backend's shape with their media, its command is written beside them
(`command.sh`), the command runs when the backend is installed here, and the Hugging Face checkpoint it
saves becomes the round's solver.

Where the backend is not installed the stage stops with the folder to take to a machine that has it; a
checkpoint found in the folder's `output` when the same `videozero iterate` runs again is read back.
`external.dry_run` writes everything and trains nothing (the round keeps its solver): how the loop is
tested without a GPU.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from store import Store
from store.queries import QuestionFilter, list_questions
from videozero.errors import VideozeroError
from videozero.export import VideoSampling, write_export
from videozero.run_config import RunConfig
from videozero.solver.grpo_config import GRPOConfig
from videozero.solver.openrlhf.dataset import export_openrlhf
from videozero.solver.openrlhf.launch import OpenRLHFLaunch, runtime_env, submit_command
from videozero.solver.verl.launch import VerlLaunch, command, environment, latest_checkpoint
from videozero.video.cache import VideoCache
from videozero.video.decode import SamplingConfig


@dataclass(frozen=True)
class ExternalRound:
    """What an external round wrote and, unless it was a dry run, the checkpoint it produced."""

    folder: Path
    questions: int
    command: list[str]
    env: dict[str, str]
    checkpoint: Path | None


def external_round(
    store: Store, config: RunConfig, run_name: str, round_index: int, model: str, gcfg: GRPOConfig
) -> ExternalRound:
    """Export the round's accepted questions for `gcfg.backend`, write its command, run it when the
    backend is installed (unless a dry run), and return the Hugging Face checkpoint it saved."""
    folder = config.run_dir / f"round-{round_index}" / f"solver-{gcfg.backend}"
    output = folder / "output"
    with store.session() as s:
        flt = QuestionFilter(run=run_name, round=round_index, status="accepted", split="train")
        rows = list(reversed(list_questions(s, flt, limit=None)))
    cache = VideoCache(config.workdir_path / "cache")
    q = config.questioner
    ext = gcfg.external
    if gcfg.backend == "verl":
        data = folder / "data" / "train.parquet"
        write_export(
            rows, data, "verl", gcfg.label_mode, VideoSampling(q.solver_fps, q.solver_max_frames), cache
        )
        launch = VerlLaunch(
            model=model,
            train_file=data,
            output_dir=output,
            nodes=ext.nodes,
            gpus_per_node=ext.gpus_per_node,
            n=gcfg.group_size,
            train_batch_size=min(gcfg.prompts_per_step * 8, max(1, len(rows))),
            mini_batch_size=min(gcfg.prompts_per_step * 4, max(1, len(rows))),
            max_response_length=gcfg.max_new_tokens,
            temperature=gcfg.temperature,
            lr=gcfg.lr,
            kl_coef=gcfg.kl_coef,
            epochs=ext.epochs,
            experiment=f"{run_name}-round{round_index}",
            weights=gcfg.weights,
            extra=ext.extra,
        )
        argv, env = command(launch, sys.executable), environment(launch)
    else:
        sampling = SamplingConfig(fps=q.solver_fps, max_frames=q.solver_max_frames, short_side=448)
        data, _, most = export_openrlhf(rows, folder / "data" / "train.jsonl", sampling, gcfg.label_mode)
        launch_o = OpenRLHFLaunch(
            model=model,
            dataset=data,
            output_dir=output,
            max_images_per_prompt=max(1, most),
            num_nodes=ext.nodes,
            gpus_per_node=ext.gpus_per_node,
            n_samples_per_prompt=gcfg.group_size,
            max_new_tokens=gcfg.max_new_tokens,
            temperature=gcfg.temperature,
            lr=gcfg.lr,
            kl_coef=gcfg.kl_coef,
            episodes=ext.epochs,
            weights=gcfg.weights,
        )
        argv = submit_command(launch_o) + list(ext.extra)
        env = runtime_env(launch_o)["env_vars"]
    _write_command(folder / "command.sh", argv, env)
    checkpoint = _saved_checkpoint(gcfg.backend, output)
    if checkpoint is None and not ext.dry_run:
        package = "verl" if gcfg.backend == "verl" else "openrlhf"
        if importlib.util.find_spec(package) is None:
            raise VideozeroError(
                f"{package} is not installed here: round {round_index}'s data and command are in {folder} "
                f"(command.sh); run it where {package} is, then run the same command again to read back "
                "its checkpoint, or set solver.backend: local."
            )
        _run(argv, env, folder / "train.log")
        checkpoint = _saved_checkpoint(gcfg.backend, output)
        if checkpoint is None:
            raise VideozeroError(
                f"{package} finished but saved no Hugging Face checkpoint in {output}: see {folder / 'train.log'}."
            )
    return ExternalRound(folder, len(rows), argv, env, checkpoint)


def _saved_checkpoint(backend: str, output: Path) -> Path | None:
    """The Hugging Face directory the backend saved under `output`, if any."""
    if not output.exists():
        return None
    if backend == "verl":
        try:
            return latest_checkpoint(output)
        except VideozeroError:
            return None
    found = sorted(p.parent for p in output.rglob("config.json") if any(p.parent.glob("*.safetensors")))
    return found[-1] if found else None


def _write_command(path: Path, argv: list[str], env: dict[str, str]) -> None:
    import shlex

    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["#!/usr/bin/env bash", "set -euo pipefail"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    lines.append(shlex.join(argv))
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
    (path.parent / "launch.json").write_text(json.dumps({"argv": argv, "env": env}, indent=1))


def _run(argv: list[str], env: dict[str, str], log: Path) -> None:
    with open(log, "w") as out:
        proc = subprocess.run(argv, env=os.environ | env, stdout=out, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        raise VideozeroError(
            f"{argv[2] if len(argv) > 2 else argv[0]} exited with {proc.returncode}: see {log}."
        )
