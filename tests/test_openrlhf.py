"""OpenRLHF adapter on CPU: reward module vs the local path, dataset export and command field by field."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.model_builds import tiny_qwen_dir
from videozero.answer_format import format_instruction
from videozero.errors import VideozeroError
from videozero.models.engines.base import Sample
from videozero.models.vocabulary import shared_tokenizer
from videozero.rewards import RewardWeights
from videozero.solver.openrlhf import reward as reward_module
from videozero.solver.openrlhf.dataset import export_openrlhf, frame_text
from videozero.solver.openrlhf.launch import OpenRLHFLaunch, submit_command, train_args
from videozero.solver.openrlhf.mm_inputs import fix_mm_token_types, guard_forward
from videozero.solver.openrlhf.reward import reward_func
from videozero.solver.rollout import score_samples

RESPONSES = [
    "<think>red</think><evidence>[1.0, 2.0]</evidence><answer>B</answer>",
    "<think></think><evidence>[1.5, 3.0]</evidence><answer>B</answer>",
    "<evidence>[0, 1]</evidence><answer>A</answer>",
    "B",
    "<evidence>[inf, 2]</evidence><answer>B</answer>",
    "",
]


def _query(prompt_text: str, response: str) -> tuple[str, str]:
    """(query, prompt) as OpenRLHF decodes them: chat-templated prompt, response, end-of-turn token."""
    tok = shared_tokenizer()
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": prompt_text}], tokenize=False, add_generation_prompt=True
    )
    return prompt + response + "<|im_end|>", prompt


def test_reward_func_matches_the_local_path() -> None:
    label = {"answer": "B", "evidence": [[1.0, 2.0]], "answer_kind": "option", "duration": 4.0}
    pairs = [_query("<|vision_start|><|image_pad|><|vision_end|>Which one?", r) for r in RESPONSES]
    out = reward_func([q for q, _ in pairs], [p for _, p in pairs], [json.dumps(label)] * len(pairs))
    local = score_samples(
        [Sample(r, [], None, "stop") for r in RESPONSES], "B", [(1.0, 2.0)], "option", RewardWeights(), 4.0
    )
    assert out["rewards"].tolist() == pytest.approx([s.reward.total for s in local])
    assert out["rewards"].tolist() == pytest.approx(
        [2.2, 1.2 + 0.25, 0.2, 0.0, 1.0, 0.0]
    )  # IoU([1.5, 3], [1, 2]) = 0.5 / 2
    assert out["scores"].tolist() == [1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    assert set(out["extra_logs"]) == {"format", "accuracy", "alignment"}
    assert out["extra_logs"]["format"].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    # without prompts (queries only), and with special tokens stripped, the rewards do not change
    stripped = [q.replace("<|im_end|>", "") for q, _ in pairs]
    again = reward_func(stripped, None, [label] * len(pairs))
    assert torch.equal(again["rewards"], out["rewards"])


def test_reward_weights_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    q, p = _query("Q", RESPONSES[1])
    label = json.dumps({"answer": "B", "evidence": [[1.0, 2.0]], "answer_kind": "option"})
    monkeypatch.setenv(reward_module.WEIGHTS_ENV, json.dumps({"w_fmt": 0.0, "alpha": 0.0}))
    assert reward_func([q], [p], [label])["rewards"].tolist() == [1.0]
    monkeypatch.setenv(reward_module.WEIGHTS_ENV, "{oops")
    with pytest.raises(VideozeroError, match="VIDEOZERO_REWARD_WEIGHTS"):
        reward_func([q], [p], [label])


@pytest.mark.parametrize("label", ["not json", json.dumps({"evidence": []}), None])
def test_bad_labels_name_the_label(label) -> None:
    with pytest.raises(VideozeroError, match="label"):
        reward_func(["x"], ["x"], [label])


def test_dataset_export_field_by_field(tmp_path) -> None:
    from videozero.solver.tasks import make_task

    task = make_task("colour", 3, tmp_path / "clips")
    row = {
        "id": 11,
        "family": "colour",
        "writer": "template",
        "text": task.text,
        "options": list(task.options),
        "spec": {},
        "answer": task.answer,
        "evidence": [list(s) for s in task.evidence],
        "video": task.path,
    }
    model_row = dict(row, id=12, writer="model", consensus_answer="A", consensus_evidence=[[0.5, 1.0]])
    from videozero.video.decode import SamplingConfig

    path, count, most = export_openrlhf(
        [row, model_row],
        tmp_path / "out" / "round1.jsonl",
        SamplingConfig(fps=2, max_frames=8, short_side=112),
    )
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert (count, most, len(lines)) == (2, 8, 2)
    first = lines[0]
    assert set(first) == {"prompt", "images", "label"}
    (message,) = first["prompt"]
    assert message["role"] == "user"
    content = message["content"]
    texts = [c["text"] for c in content if c["type"] == "text"]
    images = [c["image"] for c in content if c["type"] == "image"]
    assert images == first["images"] and len(images) == 8
    assert lines[1]["images"] == images  # two questions on one video share its frames, written once
    assert len(list((tmp_path / "out" / "round1_frames").rglob("*.png"))) == 8
    assert texts[:8] == [frame_text(t) for t in task.video.timestamps]
    assert [c["type"] for c in content[:4]] == ["text", "image", "text", "image"]
    assert (
        texts[-1].startswith(task.text)
        and "A. " in texts[-1]
        and texts[-1].endswith(format_instruction("option"))
    )
    from PIL import Image

    assert Image.open(images[0]).size == (112, 112)
    label = json.loads(first["label"])
    assert label == {
        "question_id": 11,
        "family": "colour",
        "answer": task.answer,
        "evidence": [list(s) for s in task.evidence],
        "answer_kind": "option",
        "duration": pytest.approx(task.duration),
    }
    # a model-written question trains on its consensus (label mode auto)
    second = json.loads(lines[1]["label"])
    assert (second["answer"], second["evidence"]) == ("A", [[0.5, 1.0]])
    # and the reward module reads the exported label
    response = (
        f"<evidence>[{task.evidence[0][0]}, {task.evidence[0][1]}]</evidence><answer>{task.answer}</answer>"
    )
    assert reward_func(["<|im_start|>assistant\n" + response], None, [first["label"]])[
        "rewards"
    ].tolist() == [pytest.approx(2.2)]
    with pytest.raises(VideozeroError, match="jsonl"):
        export_openrlhf([row], tmp_path / "x.parquet")


def test_command_field_by_field(tmp_path) -> None:
    c = OpenRLHFLaunch(
        model="/ckpt/solver-r1",
        dataset=tmp_path / "round1.jsonl",
        output_dir=tmp_path / "out",
        max_images_per_prompt=16,
        working_dir=tmp_path,
        weights=RewardWeights(alpha=0.5),
    )
    cmd = submit_command(c)
    sep = cmd.index("--")
    assert cmd[:3] == ["ray", "job", "submit"]
    head = dict(zip(cmd[3:sep:2], cmd[4:sep:2], strict=True))
    assert head["--address"] == "http://127.0.0.1:8265"
    env = json.loads(head["--runtime-env-json"])
    assert env["working_dir"] == str(tmp_path)
    assert json.loads(env["env_vars"][reward_module.WEIGHTS_ENV])["alpha"] == 0.5
    assert cmd[sep + 1 : sep + 4] == ["python3", "-m", "openrlhf.cli.train_ppo_ray"]
    args = train_args(c)
    assert cmd[sep + 4 :] == args
    flags: dict[str, str | None] = {}
    for i, a in enumerate(args):
        if a.startswith("--"):
            nxt = args[i + 1] if i + 1 < len(args) else None
            flags[a] = None if nxt is None or nxt.startswith("--") else nxt
    assert all(f.count(".") >= 1 for f in flags), "OpenRLHF's current flags are dotted"
    expected = {
        "--actor.model_name_or_path": "/ckpt/solver-r1",
        "--algo.advantage.estimator": "group_norm",
        "--rollout.n_samples_per_prompt": "8",
        "--reward.remote_url": reward_module.__file__,
        "--data.prompt_dataset": str(tmp_path / "round1.jsonl"),
        "--data.input_key": "prompt",
        "--data.label_key": "label",
        "--data.image_key": "images",
        "--data.max_images_per_prompt": "16",
        "--algo.kl.init_coef": "0.001",
        "--algo.kl.estimator": "k3",
        "--ckpt.output_dir": str(tmp_path / "out"),
        "--vllm.num_engines": "8",
    }
    for flag, value in expected.items():
        assert flags[flag] == value, flag
    for switch in (
        "--data.apply_chat_template",
        "--ckpt.save_hf",
        "--algo.kl.use_loss",
        "--train.colocate_all",
    ):
        assert switch in flags and flags[switch] is None
    # VLM training in OpenRLHF takes neither a critic nor packed samples
    assert not any(f.startswith("--critic.") for f in flags) and "--ds.packing_samples" not in flags
    no_kl = train_args(c.model_copy(update={"kl_coef": 0.0, "vllm_engines": 0}))
    assert "--algo.kl.use_loss" not in no_kl and "--vllm.num_engines" not in no_kl
    with pytest.raises(ValueError):
        OpenRLHFLaunch(model="m", dataset="d.jsonl", output_dir="o", n_samples_per_prompt=1)


def test_token_type_guard_restores_video_positions() -> None:
    """A Qwen3-VL forward given `token_type_ids` (the reported bug) vs the guarded one vs the right input."""
    from videozero.models.loader import load_model
    from videozero.models.prompt import Request, VideoInput, build_batch

    lm = load_model(tiny_qwen_dir("qwen3_vl"))
    frames = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    batch = build_batch(lm, [Request("What moves?", VideoInput(frames, np.array([0.0, 0.5, 1.0, 1.5])))])
    right = dict(batch.inputs)
    buggy = {k: v for k, v in right.items() if k != "mm_token_type_ids"}
    buggy["token_type_ids"] = torch.zeros_like(right["input_ids"])
    with torch.no_grad():
        good = lm.model(**right).logits
        fixed_kwargs = fix_mm_token_types(
            buggy, lm.model.config.image_token_id, lm.model.config.video_token_id
        )
        assert "token_type_ids" not in fixed_kwargs
        assert torch.equal(fixed_kwargs["mm_token_type_ids"], right["mm_token_type_ids"])
        original = guard_forward(lm.model)
        guarded = lm.model(**buggy).logits
        lm.model.forward = original
    assert torch.allclose(guarded, good, atol=1e-5)
