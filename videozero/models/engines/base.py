"""The generation interface every engine implements: requests in, n samples per request out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from videozero.models.request import Request


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: n completions per request; temperature 0 is greedy; log-probs of sampled tokens if asked.

    Log-probs are those of the model's raw distribution (temperature 1, no top-p/top-k), as the policy
    gradient needs them.
    """

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 128
    seed: int | None = None
    logprobs: bool = False
    stop: tuple[str, ...] = ()  # strings that end a completion (kept in its text), besides end-of-turn

    def __post_init__(self) -> None:
        if self.n < 1 or self.max_new_tokens < 1 or self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"invalid sampling parameters {self}")


@dataclass
class Sample:
    """One completion: its text, its token ids (end-of-turn included when reached), per-token log-probs."""

    text: str
    token_ids: list[int]
    logprobs: list[float] | None
    finish_reason: str


class GenerationEngine(ABC):
    """Samples completions for requests; `generate` returns one list of `params.n` samples per request."""

    @abstractmethod
    def generate(self, requests: Sequence[Request], params: SamplingParams) -> list[list[Sample]]: ...
