"""The `python -m verl.trainer.main_ppo ...` command of a solver round, and its checkpoint read back.

Keys are verl 0.9.1's Hydra config (`verl/trainer/config/_generated_ppo_trainer.yaml`; the test checks
every key against that file, kept in tests/data/verl-0.9.1): GRPO (`algorithm.adv_estimator=grpo`, n
rollouts per prompt), vLLM rollouts, the exported parquet's `prompt` / `images` / `videos` columns, and
the reward as `reward.custom_reward_function.path` / `.name` pointing at
`solver/external_rewards.py::compute_score`, the loop's own reward contract. The actor saves its Hugging
Face weights (`checkpoint.save_contents` with `hf_model`), so the round's solver is
`<out>/global_step_<N>/actor/huggingface` with no merge step (`merge_command` is verl's merger for the
other case).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from videozero.errors import VideozeroError
from videozero.rewards import RewardWeights
from videozero.solver import external_rewards

VERL_RELEASE = "0.9.1"
_STEP = re.compile(r"global_step_(\d+)$")


class VerlLaunch(BaseModel):
    """What a GRPO round on verl needs; defaults fit one 8-GPU node with a 7B Qwen-VL."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="HF id or directory of the solver checkpoint")
    train_file: Path = Field(description="parquet in the verl shape (`videozero qa export --shape verl`)")
    val_file: Path | None = Field(None, description="parquet of validation rows (default: train_file)")
    output_dir: Path
    nodes: int = Field(1, ge=1)
    gpus_per_node: int = Field(8, ge=1)
    n: int = Field(8, ge=2, description="rollouts per prompt (the GRPO group)")
    train_batch_size: int = Field(64, ge=1, description="prompts per step")
    mini_batch_size: int = Field(32, ge=1)
    micro_batch_size_per_gpu: int = Field(2, ge=1)
    max_prompt_length: int = Field(8192, ge=256)
    max_response_length: int = Field(512, ge=16)
    tensor_parallel: int = Field(1, ge=1, description="vLLM tensor parallel size")
    gpu_memory_utilization: float = Field(0.6, gt=0, le=1)
    lr: float = Field(1e-6, gt=0)
    kl_coef: float = Field(1e-2, ge=0, description="KL loss to the reference (0: none, no reference)")
    temperature: float = Field(1.0, gt=0)
    epochs: int = Field(1, ge=1)
    save_freq: int = Field(20, ge=1)
    project: str = "videozero"
    experiment: str = "solver"
    weights: RewardWeights = Field(default_factory=RewardWeights)
    extra: list[str] = Field(default_factory=list, description="more key=value overrides, appended as given")


def overrides(c: VerlLaunch) -> list[str]:
    """The Hydra overrides (key=value) of `python -m verl.trainer.main_ppo`."""
    val = c.val_file or c.train_file
    kl = c.kl_coef > 0
    args = {
        "algorithm.adv_estimator": "grpo",
        "algorithm.use_kl_in_reward": "False",
        "data.train_files": str(c.train_file),
        "data.val_files": str(val),
        "data.prompt_key": "prompt",
        "data.image_key": "images",
        "data.video_key": "videos",
        "data.train_batch_size": c.train_batch_size,
        "data.max_prompt_length": c.max_prompt_length,
        "data.max_response_length": c.max_response_length,
        "data.filter_overlong_prompts": "True",  # verl pads long prompts; video prompts run long
        "data.truncation": "error",
        "actor_rollout_ref.model.path": c.model,
        "actor_rollout_ref.actor.optim.lr": f"{c.lr:g}",
        "actor_rollout_ref.actor.ppo_mini_batch_size": c.mini_batch_size,
        "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu": c.micro_batch_size_per_gpu,
        "actor_rollout_ref.actor.use_kl_loss": str(kl),
        "actor_rollout_ref.actor.kl_loss_coef": f"{c.kl_coef:g}",
        "actor_rollout_ref.actor.entropy_coeff": 0,
        "actor_rollout_ref.actor.checkpoint.save_contents": "['model','optimizer','extra','hf_model']",
        "actor_rollout_ref.rollout.name": "vllm",
        "actor_rollout_ref.rollout.n": c.n,
        "actor_rollout_ref.rollout.temperature": f"{c.temperature:g}",
        "actor_rollout_ref.rollout.tensor_model_parallel_size": c.tensor_parallel,
        "actor_rollout_ref.rollout.gpu_memory_utilization": f"{c.gpu_memory_utilization:g}",
        "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": c.micro_batch_size_per_gpu,
        "reward.custom_reward_function.path": str(Path(external_rewards.__file__).resolve()),
        "reward.custom_reward_function.name": "compute_score",
        "trainer.n_gpus_per_node": c.gpus_per_node,
        "trainer.nnodes": c.nodes,
        "trainer.total_epochs": c.epochs,
        "trainer.save_freq": c.save_freq,
        "trainer.test_freq": -1,
        "trainer.val_before_train": "False",
        "trainer.default_local_dir": str(c.output_dir),
        "trainer.project_name": c.project,
        "trainer.experiment_name": c.experiment,
        "trainer.logger": "['console']",
    }
    if kl:
        args["actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu"] = c.micro_batch_size_per_gpu
    return [f"{k}={v}" for k, v in args.items()] + list(c.extra)


def command(c: VerlLaunch, python: str = "python3") -> list[str]:
    """`python3 -m verl.trainer.main_ppo <overrides>`."""
    return [python, "-m", "verl.trainer.main_ppo", *overrides(c)]


def environment(c: VerlLaunch) -> dict[str, str]:
    """What the reward module reads in verl's workers: the loop's reward weights."""
    return {external_rewards.WEIGHTS_ENV: c.weights.model_dump_json()}


def shell_line(c: VerlLaunch) -> str:
    """The command as one line for a shell, with its environment."""
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in environment(c).items())
    return f"{env} {shlex.join(command(c))}"


def merge_command(actor_dir: Path, target: Path, python: str = "python3") -> list[str]:
    """verl's merger of a sharded FSDP actor into a Hugging Face directory (when `hf_model` was not saved)."""
    return [
        python, "-m", "verl.model_merger", "merge", "--backend", "fsdp",
        "--local_dir", str(actor_dir), "--target_dir", str(target),
    ]  # fmt: skip


def latest_checkpoint(output_dir: Path) -> Path:
    """The Hugging Face directory of the newest step verl saved under `output_dir`."""
    steps = sorted(
        (int(m.group(1)), p) for p in Path(output_dir).glob("global_step_*") if (m := _STEP.search(p.name))
    )
    for _, step in reversed(steps):
        hf = step / "actor" / "huggingface"
        if (hf / "config.json").exists() and any(hf.glob("*.safetensors")):
            return hf
    raise VideozeroError(
        f"verl saved no Hugging Face checkpoint under {output_dir} (global_step_*/actor/huggingface with "
        "weights): let the run reach trainer.save_freq, or merge a sharded actor with `python -m "
        "verl.model_merger merge --backend fsdp`."
    )
