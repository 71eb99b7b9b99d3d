"""The machine's own floor, measured in the same run as a benchmark: what its model work could cost at best.

A benchmark's seconds mean little on their own (two CPU cores of one machine run the same script 1.5x
faster than another's). Each speed benchmark therefore times an fp32 GEMM on the same threads in the
same process, counts the model FLOPs of the work it timed, and prints the utilisation this implies:
model FLOPs / (seconds x GEMM FLOP/s). A utilisation near 1 means the work is at the compute floor and
only fewer or cheaper tokens make it faster; a low one means overhead to remove.

Model FLOPs per token, counted the usual way (Kaplan et al. 2020) over the parameters a token multiplies
by: the body's P for every token (input embeddings are a lookup, not counted) and the output head's for
the positions whose logits are computed (completion tokens in training, one per prompt in prefill, every
generated token):
- forward: 2 P
- forward + backward, full fine-tune: 6 P (the backward computes gradients of activations and weights)
- forward + backward, LoRA or a frozen LM: 4 P (activation gradients only; the adapters' are negligible)
Attention's own FLOPs (about 4 x layers x hidden x context per token) are left out: under 10% of nano's at
a few hundred tokens, so utilisations read slightly low.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

FORWARD, BACKWARD_FULL, BACKWARD_FROZEN = 2.0, 6.0, 4.0


def gemm_gflops(size: int = 1024, seconds: float = 1.0) -> float:
    """fp32 GEMM throughput (GFLOP/s) on torch's current threads: the best of repeated size^3 products."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best, spent = float("inf"), 0.0
    while spent < seconds:
        t = time.perf_counter()
        a @ b
        dt = time.perf_counter() - t
        best, spent = min(best, dt), spent + dt
    return 2 * size**3 / best / 1e9


@dataclass(frozen=True)
class LMSize:
    """Parameters of a language model's body (every token) and of its output head (logit positions)."""

    body: int
    head: int

    def flops(self, tokens: float, logit_tokens: float, per_token: float = FORWARD) -> float:
        """FLOPs of `tokens` through the body and `logit_tokens` of them through the head."""
        return per_token * (self.body * tokens + self.head * logit_tokens)


@dataclass(frozen=True)
class Floor:
    """One work item's model FLOPs beside the time it took and the GEMM rate of the same run."""

    flops: float
    seconds: float
    gemm_gflops: float

    @property
    def floor_s(self) -> float:
        """Seconds the FLOPs would take at the GEMM's rate."""
        return self.flops / (self.gemm_gflops * 1e9)

    @property
    def utilisation(self) -> float:
        return self.floor_s / self.seconds if self.seconds > 0 else float("nan")

    def __str__(self) -> str:
        return (
            f"{self.flops / 1e12:.2f} TFLOP, floor {self.floor_s:.2f} s, utilisation {self.utilisation:.2f}"
        )


def lm_size(model: torch.nn.Module) -> LMSize:
    """Body and head parameters of a (possibly peft-wrapped) causal LM; a vision tower's are in the body
    only if it runs per token (nano's frozen frame encoder runs per frame and is cached, so it is not)."""
    head = model.get_output_embeddings().weight
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    seen, body = set(), 0
    for name, p in model.named_parameters():
        if id(p) in seen or id(p) in embeddings or p is head or "visual" in name:
            continue
        seen.add(id(p))
        body += p.numel()
    return LMSize(body=body, head=head.numel())


class FlopMeter:
    """Model FLOPs of every language-model forward run in this process while active, and of the
    backward each implies, by a global module forward hook (code under test is run as is).

    A language model's body is a module with `embed_tokens` and `layers` children: each call adds its
    tokens (batch x sequence, padding included) times its parameters; its head is a `lm_head` child: each
    call adds its logit positions times the head's parameters. A forward run with gradients on is counted
    as trained: 6 P per token when most of the body trains (full fine-tune), else 4 P (LoRA, projector
    only); one without gradients 2 P.
    """

    def __init__(self) -> None:
        self.flops = 0.0
        self.tokens = 0
        self._params: dict[int, tuple[int, float]] = {}
        self._handle = None

    def __enter__(self) -> FlopMeter:
        self._handle = torch.nn.modules.module.register_module_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _size(self, module: torch.nn.Module, body: bool) -> tuple[int, float]:
        """(parameters per token, share of them that train) of a body or head, cached per module."""
        key = id(module)
        if key not in self._params:
            if body:
                embed = module._modules["embed_tokens"]
                ps = [p for n, p in module.named_parameters() if not n.startswith("embed_tokens")]
                ps = [p for p in ps if p is not getattr(embed, "weight", None)]
            else:
                ps = list(module._modules["lm_head"].parameters())
            total = sum(p.numel() for p in ps)
            self._params[key] = (total, sum(p.numel() for p in ps if p.requires_grad) / max(1, total))
        return self._params[key]

    def _hook(self, module: torch.nn.Module, args, output) -> None:
        children = module._modules
        body = "embed_tokens" in children and "layers" in children
        if not body and "lm_head" not in children:
            return
        if body:
            hidden = getattr(output, "last_hidden_state", None)
            if hidden is None and isinstance(output, tuple) and output:
                hidden = output[0]
        else:
            hidden = getattr(output, "logits", None)
        if not isinstance(hidden, torch.Tensor) or hidden.dim() < 2:
            return
        params, training = self._size(module, body)
        per_token = FORWARD
        if torch.is_grad_enabled():
            per_token = BACKWARD_FULL if training > 0.5 else BACKWARD_FROZEN
        tokens = int(hidden.shape[0] * hidden.shape[1])
        if body:
            self.tokens += tokens
        self.flops += per_token * params * tokens
