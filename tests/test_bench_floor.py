"""The floor bench/ scripts report: FLOPs counted by the global forward hook match the parameter count."""

from __future__ import annotations

import math

import pytest
import torch

from bench.floor import BACKWARD_FROZEN, FORWARD, Floor, FlopMeter, gemm_gflops, lm_size
from tests.model_builds import tiny_qwen_dir
from videozero.models.loader import load_model


def test_flop_meter_counts_body_tokens_and_logit_positions() -> None:
    lm = load_model(tiny_qwen_dir("qwen3_vl"), device="cpu")
    size = lm_size(lm.model)
    assert size.body > 0 and size.head == lm.model.get_output_embeddings().weight.numel()
    ids = torch.randint(0, 100, (3, 20))
    with FlopMeter() as meter, torch.no_grad():
        lm.model(input_ids=ids, logits_to_keep=4)
    assert meter.tokens == 60
    assert meter.flops == pytest.approx(size.flops(60, 12, FORWARD), rel=0.02)
    with FlopMeter() as meter:  # gradients on, LM frozen (as with LoRA): 4 P a token
        lm.model.requires_grad_(False)
        lm.model(input_ids=ids, logits_to_keep=4)
    assert meter.flops == pytest.approx(size.flops(60, 12, BACKWARD_FROZEN), rel=0.02)
    outside = FlopMeter()
    lm.model(input_ids=ids)  # not counted: the hook is only installed inside the block
    assert outside.flops == 0.0


def test_floor_utilisation_from_a_measured_gemm() -> None:
    rate = gemm_gflops(size=256, seconds=0.05)
    assert math.isfinite(rate) and rate > 0
    floor = Floor(flops=rate * 1e9 * 2.0, seconds=4.0, gemm_gflops=rate)
    assert floor.floor_s == pytest.approx(2.0) and floor.utilisation == pytest.approx(0.5)
