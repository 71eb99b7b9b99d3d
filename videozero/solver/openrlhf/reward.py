"""OpenRLHF reward module: `reward_func(queries, prompts, labels)` over the reward contract (`scoring`).

Pass this file to OpenRLHF with `--reward.remote_url <path to this file>`; OpenRLHF calls
`reward_func(queries, prompts, labels, **kwargs)` with `queries` the decoded prompt + response strings,
`prompts` the decoded prompts and `labels` the dataset's label column (our JSON strings), and expects
`{"rewards": tensor, "scores": tensor in [0, 1] (dynamic filtering), "extra_logs": {name: tensor}}`.

Reward weights come from the environment variable VIDEOZERO_REWARD_WEIGHTS (JSON of
`rewards.RewardWeights` fields), so a launch can set them without editing code.
"""

from __future__ import annotations

from typing import Any

from videozero.rewards import RewardWeights, SolverReward
from videozero.scoring import Label, exported_label, score_completion
from videozero.solver.external_rewards import WEIGHTS_ENV, weights_from_env

__all__ = ["WEIGHTS_ENV", "read_label", "response_of", "reward_func", "score_response", "weights_from_env"]

ASSISTANT_START = "<|im_start|>assistant\n"
END_MARKERS = ("<|im_end|>", "<|endoftext|>", "</s>", "<|end_of_text|>")


def response_of(query: str, prompt: str | None = None) -> str:
    """The model's response inside an OpenRLHF query (prompt + response, special tokens possibly kept).

    >>> response_of("<|im_start|>user\\nQ<|im_end|>\\n<|im_start|>assistant\\n<answer>B</answer><|im_end|>")
    '<answer>B</answer>'
    """
    if prompt and query.startswith(prompt):
        text = query[len(prompt) :]
    else:
        cut = query.rfind(ASSISTANT_START)
        text = query[cut + len(ASSISTANT_START) :] if cut >= 0 else query
    for marker in END_MARKERS:
        while text.endswith(marker) or text.rstrip().endswith(marker):
            text = text.rstrip()[: -len(marker)]
    return text.strip()


def read_label(label: Any) -> dict[str, Any]:
    """A label as written by `dataset.openrlhf_row` (a JSON string or an already decoded dict)."""
    return exported_label(label)


def score_response(response: str, label: dict[str, Any], weights: RewardWeights) -> SolverReward:
    """`rewards.SolverReward` of one response against one decoded label (the reward contract,
    `scoring.score_completion`)."""
    return score_completion(response, Label.from_export(label), weights).reward


def reward_func(queries, prompts, labels, **kwargs) -> dict[str, Any]:
    """OpenRLHF's custom reward entry point."""
    import torch

    weights = weights_from_env()
    prompts = list(prompts) if prompts is not None else [None] * len(queries)
    parts = [
        score_response(response_of(q, p), read_label(label), weights)
        for q, p, label in zip(queries, prompts, labels, strict=True)
    ]
    rewards = torch.tensor([r.total for r in parts], dtype=torch.float32)
    accuracy = torch.tensor([r.accuracy for r in parts], dtype=torch.float32)
    return {
        "rewards": rewards,
        "scores": accuracy,
        "extra_logs": {
            "format": torch.tensor([r.format for r in parts], dtype=torch.float32),
            "accuracy": accuracy,
            "alignment": torch.tensor([r.alignment for r in parts], dtype=torch.float32),
        },
    }
