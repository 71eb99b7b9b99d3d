"""The reward contract as verl and TRL call it, for the rows `videozero qa export` writes.

- verl (0.9.1): point `reward.custom_reward_function.path` at this file and `.name` at `compute_score`
  (`solver/verl/launch.py` does); verl calls `compute_score(data_source=, solution_str=, ground_truth=,
  extra_info=)` with the exported row's `reward_model.ground_truth` (our JSON label) and reads the
  returned dict's `score`, logging the other keys as reward parts.
- TRL: pass `trl_reward` (or `trl_reward_with(weights)`) in `GRPOTrainer(reward_funcs=[...])`; TRL calls it
  with the completions and the dataset's extra columns (`solution`, `evidence` of the `trl` export).
- OpenRLHF has its own module (`solver.openrlhf.reward`), over the same `scoring.score_completion`.

Weights are `rewards.RewardWeights` (defaults: the loop's), or JSON of its fields in the environment
variable VIDEOZERO_REWARD_WEIGHTS, as for OpenRLHF.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any

from videozero.errors import VideozeroError
from videozero.rewards import RewardWeights
from videozero.scoring import Label, score_completion

WEIGHTS_ENV = "VIDEOZERO_REWARD_WEIGHTS"


def weights_from_env() -> RewardWeights:
    """Reward weights from VIDEOZERO_REWARD_WEIGHTS (JSON of `RewardWeights` fields), else the defaults."""
    raw = os.environ.get(WEIGHTS_ENV)
    if not raw:
        return RewardWeights()
    try:
        return RewardWeights(**json.loads(raw))
    except (json.JSONDecodeError, TypeError, ValueError):
        raise VideozeroError(f"{WEIGHTS_ENV}={raw[:80]!r} is not JSON of RewardWeights fields.") from None


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's reward entry point: the total reward as `score`, and its parts (the same keys for every
    row, as verl 0.9.1's reward loop requires). verl passes keywords, and may add others (a reward
    model's address, its tokenizer), which this reward does not use.

    >>> truth = json.dumps({"answer": "B", "evidence": [[2.0, 4.0]], "answer_kind": "option"})
    >>> compute_score("videozero/grounding", "<evidence>[2, 4]</evidence><answer>B</answer>", truth)["accuracy"]
    1.0
    """
    reward = score_completion(solution_str, Label.from_json(ground_truth), weights_from_env()).reward
    return {
        "score": reward.total,
        "format": reward.format,
        "accuracy": reward.accuracy,
        "alignment": reward.alignment,
    }


def _completion_text(completion: Any) -> str:
    """A TRL completion: plain text, or a conversational list of messages (the assistant's content)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        if isinstance(content, list):  # multimodal message parts
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return str(content)
    raise VideozeroError(f"completion {str(completion)[:80]!r} is neither text nor a list of messages.")


def trl_reward_with(weights: RewardWeights | None = None) -> Callable[..., list[float]]:
    """A TRL reward function at `weights` (TRL names a reward by its function's `__name__`)."""
    w = weights or RewardWeights()

    def videozero_reward(
        completions: Sequence[Any],
        solution: Sequence[str],
        evidence: Sequence[Sequence[Sequence[float]]] | None = None,
        answer_kind: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        spans = evidence if evidence is not None else [[]] * len(completions)
        kinds = answer_kind if answer_kind is not None else ["option"] * len(completions)
        return [
            score_completion(
                _completion_text(c),
                Label(str(a), tuple((float(s), float(e)) for s, e in ev or ()), str(k)),
                w,
            ).reward.total
            for c, a, ev, k in zip(completions, solution, spans, kinds, strict=True)
        ]

    return videozero_reward


def trl_reward(completions: Sequence[Any], solution: Sequence[str], **kwargs: Any) -> list[float]:
    """TRL's reward callable at the weights of VIDEOZERO_REWARD_WEIGHTS (else the loop's defaults).

    >>> trl_reward([[{"role": "assistant", "content": "<evidence>[0, 1]</evidence><answer>A</answer>"}]],
    ...            solution=["A"], evidence=[[[0.0, 1.0]]])
    [2.2]
    """
    return trl_reward_with(weights_from_env())(completions, solution, **kwargs)
