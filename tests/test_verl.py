"""verl as the solver's backend: the command's keys against verl 0.9.1's own config, the reward module
called the way verl calls it, and a round handed to verl (and OpenRLHF) up to the command."""

from __future__ import annotations

import importlib.util
import json
import shlex
from pathlib import Path

import pytest
import yaml

from videozero.rewards import RewardWeights
from videozero.scoring import Label, score_completion
from videozero.solver.verl.launch import VERL_RELEASE, VerlLaunch, command, latest_checkpoint, overrides

VERL_CONFIG = Path(__file__).parent / "data" / f"verl-{VERL_RELEASE}" / "_generated_ppo_trainer.yaml"


def _flat(tree: object, prefix: str = "") -> dict[str, object]:
    if isinstance(tree, dict):
        out: dict[str, object] = {}
        for k, v in tree.items():
            out |= _flat(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return {prefix: tree}


def test_every_key_of_the_command_is_in_verls_config(tmp_path: Path) -> None:
    keys = _flat(yaml.safe_load(VERL_CONFIG.read_text()))
    assert len(keys) > 500  # the whole trainer config, not an excerpt
    for kl in (0.0, 0.01):
        launch = VerlLaunch(
            model="Qwen/Qwen2.5-VL-3B-Instruct",
            train_file=tmp_path / "t.parquet",
            output_dir=tmp_path / "o",
            kl_coef=kl,
        )
        args = overrides(launch)
        named = [a.split("=", 1)[0] for a in args]
        assert len(set(named)) == len(named)
        missing = [k for k in named if k not in keys]
        assert not missing, f"not in verl {VERL_RELEASE}'s config: {missing}"
        got = dict(a.split("=", 1) for a in args)
        assert got["algorithm.adv_estimator"] == "grpo" and got["actor_rollout_ref.rollout.name"] == "vllm"
        assert got["actor_rollout_ref.rollout.n"] == "8"
        assert Path(got["reward.custom_reward_function.path"]).name == "external_rewards.py"
        assert got["reward.custom_reward_function.name"] == "compute_score"
        # the export's columns are the ones verl is told to read
        assert (got["data.prompt_key"], got["data.image_key"], got["data.video_key"]) == (
            "prompt",
            "images",
            "videos",
        )
        assert ("actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu" in got) == (kl > 0)
    argv = command(launch, "python3")
    assert argv[:3] == ["python3", "-m", "verl.trainer.main_ppo"]
    assert shlex.split(shlex.join(argv)) == argv


def _verl_reward(path: str, name: str):
    """The reward function loaded the way verl loads `reward.custom_reward_function`: from a file path."""
    spec = importlib.util.spec_from_file_location("custom_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def test_the_reward_module_as_verl_calls_it_returns_the_local_rewards(tmp_path: Path) -> None:
    launch = VerlLaunch(model="m", train_file=tmp_path / "t.parquet", output_dir=tmp_path / "o")
    got = dict(a.split("=", 1) for a in overrides(launch))
    fn = _verl_reward(got["reward.custom_reward_function.path"], got["reward.custom_reward_function.name"])
    labels = [
        {
            "question_id": 1,
            "answer": "B",
            "evidence": [[2.0, 4.0]],
            "answer_kind": "option",
            "duration": 10.0,
        },
        {
            "question_id": 2,
            "answer": "2,1,3",
            "evidence": [[1.0, 2.0], [6.0, 7.0]],
            "answer_kind": "permutation",
            "duration": 9.0,
        },
        {
            "question_id": 3,
            "answer": "[3.0, 5.0]",
            "evidence": [[3.0, 5.0]],
            "answer_kind": "span",
            "duration": 12.0,
        },
    ]
    responses = [
        "<think>x</think><evidence>[2, 4]</evidence><answer>B</answer>",
        "<think></think><evidence>[1.5, 3]</evidence><answer>2,1,3</answer>",
        "<evidence>[0, 1]</evidence><answer>A</answer>",
        "no format",
        "<think>a</think><evidence>[3, 5.5]</evidence><answer>[3, 5]</answer>",
    ]
    keys = None
    for label in labels:
        truth = json.dumps(label)
        extra_info = {
            "question_id": label["question_id"],
            "split": "train",
            "level": 1,
            "num_turns": 2,
            "rollout_reward_scores": {},
        }
        for text in responses:
            out = fn(
                data_source="videozero/grounding",
                solution_str=text,
                ground_truth=truth,
                extra_info=extra_info,
                reward_router_address=None,
            )
            local = score_completion(text, Label.from_export(label), RewardWeights()).reward
            assert out["score"] == pytest.approx(local.total)
            assert (out["format"], out["accuracy"], out["alignment"]) == pytest.approx(
                (local.format, local.accuracy, local.alignment)
            )
            keys = keys or set(out)
            assert set(out) == keys  # verl takes the keys of the first row for every row


def test_latest_checkpoint_reads_back_the_newest_saved_hf_weights(tmp_path: Path) -> None:
    from videozero.errors import VideozeroError

    with pytest.raises(VideozeroError, match="saved no Hugging Face checkpoint"):
        latest_checkpoint(tmp_path)
    for step, weights in ((5, True), (10, True), (15, False)):  # step 15: sharded only
        hf = tmp_path / f"global_step_{step}" / "actor" / "huggingface"
        hf.mkdir(parents=True)
        (hf / "config.json").write_text("{}")
        if weights:
            (hf / "model.safetensors").write_bytes(b"")
    assert latest_checkpoint(tmp_path) == tmp_path / "global_step_10" / "actor" / "huggingface"
