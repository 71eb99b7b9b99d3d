"""The `ray job submit -- python3 -m openrlhf.cli.train_ppo_ray ...` command of a solver round.

Flags are OpenRLHF's current dotted names (`--actor.model_name_or_path`, `--algo.advantage.estimator
group_norm`, `--rollout.n_samples_per_prompt`, `--reward.remote_url`, `--data.image_key`, ...), as its
`openrlhf/cli/train_ppo_ray.py` parser defines them. GRPO needs more than one sample per prompt; VLM
training in OpenRLHF allows neither a critic nor sample packing, so neither is ever set.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from pydantic import BaseModel, Field

from videozero.rewards import RewardWeights
from videozero.solver.openrlhf import reward as reward_module
from videozero.solver.openrlhf.dataset import IMAGE_KEY, INPUT_KEY, LABEL_KEY


class OpenRLHFLaunch(BaseModel):
    """What a GRPO round on OpenRLHF needs; defaults fit one 8-GPU node with everything colocated."""

    model: str = Field(description="HF id or directory of the solver checkpoint")
    dataset: Path = Field(description="prompt dataset written by dataset.export_openrlhf")
    output_dir: Path
    max_images_per_prompt: int = Field(32, ge=1, description="frames per prompt (export_openrlhf says)")
    address: str = "http://127.0.0.1:8265"
    working_dir: Path | None = Field(None, description="shipped to the Ray workers (the videozero checkout)")
    num_nodes: int = Field(1, ge=1)
    gpus_per_node: int = Field(8, ge=1)
    vllm_engines: int = Field(8, ge=0)
    vllm_tensor_parallel: int = Field(1, ge=1)
    n_samples_per_prompt: int = Field(8, ge=2, description="the GRPO group size")
    rollout_batch_size: int = Field(64, ge=1, description="prompts per rollout")
    train_batch_size: int = Field(256, ge=1, description="samples per optimiser step")
    micro_batch_size: int = Field(2, ge=1)
    max_len: int = Field(8192, ge=256, description="prompt + response tokens")
    max_new_tokens: int = Field(256, ge=16)
    temperature: float = Field(1.0, gt=0)
    lr: float = Field(1e-6, gt=0)
    kl_coef: float = Field(1e-3, ge=0)
    episodes: int = Field(1, ge=1)
    seed: int = 42
    weights: RewardWeights = Field(default_factory=RewardWeights)


def train_args(c: OpenRLHFLaunch) -> list[str]:
    """The arguments of `python3 -m openrlhf.cli.train_ppo_ray`."""
    n, g = str(c.num_nodes), str(c.gpus_per_node)
    args = [
        "--actor.num_nodes",
        n,
        "--actor.num_gpus_per_node",
        g,
        "--ref.num_nodes",
        n,
        "--ref.num_gpus_per_node",
        g,
        "--train.colocate_all",
        "--actor.model_name_or_path",
        c.model,
        "--actor.freeze_visual_encoder",
        "--actor.gradient_checkpointing_enable",
        "--actor.adam.lr",
        f"{c.lr:g}",
        "--algo.advantage.estimator",
        "group_norm",
        "--algo.kl.init_coef",
        f"{c.kl_coef:g}",
        "--reward.remote_url",
        str(Path(reward_module.__file__).resolve()),
        "--data.prompt_dataset",
        str(c.dataset),
        "--data.input_key",
        INPUT_KEY,
        "--data.label_key",
        LABEL_KEY,
        "--data.image_key",
        IMAGE_KEY,
        "--data.max_images_per_prompt",
        str(c.max_images_per_prompt),
        "--data.apply_chat_template",
        "--data.max_len",
        str(c.max_len),
        "--rollout.n_samples_per_prompt",
        str(c.n_samples_per_prompt),
        "--rollout.batch_size",
        str(c.rollout_batch_size),
        "--rollout.micro_batch_size",
        str(c.micro_batch_size),
        "--rollout.max_new_tokens",
        str(c.max_new_tokens),
        "--rollout.temperature",
        f"{c.temperature:g}",
        "--train.batch_size",
        str(c.train_batch_size),
        "--train.micro_batch_size",
        str(c.micro_batch_size),
        "--train.num_episodes",
        str(c.episodes),
        "--train.seed",
        str(c.seed),
        "--ds.zero_stage",
        "3",
        "--ds.param_dtype",
        "bf16",
        "--ckpt.output_dir",
        str(c.output_dir),
        "--ckpt.save_hf",
    ]
    if c.kl_coef > 0:
        args += ["--algo.kl.use_loss", "--algo.kl.estimator", "k3"]
    if c.vllm_engines > 0:
        args += [
            "--vllm.num_engines",
            str(c.vllm_engines),
            "--vllm.tensor_parallel_size",
            str(c.vllm_tensor_parallel),
            "--vllm.enable_sleep",
            "--ds.enable_sleep",
        ]
    return args


def runtime_env(c: OpenRLHFLaunch) -> dict:
    """Ray runtime env: the checkout to ship (if any) and the reward weights the reward module reads."""
    env: dict = {"env_vars": {reward_module.WEIGHTS_ENV: c.weights.model_dump_json()}}
    if c.working_dir is not None:
        env["working_dir"] = str(c.working_dir)
    return env


def submit_command(c: OpenRLHFLaunch) -> list[str]:
    """`ray job submit --address ... --runtime-env-json ... -- python3 -m openrlhf.cli.train_ppo_ray ...`."""
    return [
        "ray", "job", "submit",
        "--address", c.address,
        "--runtime-env-json", json.dumps(runtime_env(c), sort_keys=True),
        "--",
        "python3", "-m", "openrlhf.cli.train_ppo_ray",
        *train_args(c),
    ]  # fmt: skip


def shell_line(c: OpenRLHFLaunch) -> str:
    """The command as one line for a shell."""
    return shlex.join(submit_command(c))
