"""GRPO: loss maths on hand-computed tensors, rollout scoring and labels, and a seeded learning run."""

from __future__ import annotations

import math

import pytest
import torch

from tests.model_builds import tiny_qwen_dir
from videozero.models.engines.base import Sample
from videozero.models.prompt import Request, TokenRegion
from videozero.rewards import RewardWeights
from videozero.solver.grpo import clipped_policy_loss, group_advantages, k3_kl, token_advantages
from videozero.solver.pseudo_label import PseudoLabel
from videozero.solver.rollout import (
    QuestionRollouts,
    SolverQuestion,
    attempt_rows,
    consensus_agreement,
    score_samples,
    training_target,
)

P, C, T, E, A = (int(r) for r in TokenRegion)


# -- advantages -------------------------------------------------------------------------------------------
def test_group_advantages_by_hand() -> None:
    # group 1: rewards 1, 0, 0, 1 -> mean 0.5, unbiased std sqrt(1/3) -> +-0.866
    # group 2: 0.2 everywhere -> no spread: advantages 0, group marked as not varied
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.2, 0.2, 0.2, 0.2])
    adv, varied = group_advantages(rewards, 4, eps=0.0)
    s = math.sqrt(3) / 2
    assert adv.tolist() == pytest.approx([s, -s, -s, s, 0, 0, 0, 0])
    assert varied.tolist() == [True, False]
    centred, _ = group_advantages(rewards, 4, scale_std=False)
    assert centred.tolist() == pytest.approx([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0])


def test_token_advantages_selective_and_plain() -> None:
    regions = torch.tensor([[P, P, T, E, E, A, C], [P, T, T, E, A, A, C]])
    mask = regions > P
    total, acc, align = torch.tensor([1.0, -1.0]), torch.tensor([2.0, -2.0]), torch.tensor([3.0, -3.0])
    plain = token_advantages(regions, mask, total)
    assert plain.tolist() == [[0, 0, 1, 1, 1, 1, 1], [0, -1, -1, -1, -1, -1, -1]]
    sel = token_advantages(regions, mask, total, acc, align)
    assert sel.tolist() == [[0, 0, 1, 3, 3, 2, 1], [0, -1, -1, -3, -2, -2, -1]]


# -- clipped objective and aggregation --------------------------------------------------------------------
def test_clipped_loss_by_hand() -> None:
    # ratios e^0 = 1, e^0.5 = 1.6487, e^-0.5 = 0.6065; advantages +1, +1, -1; eps 0.2
    logp = torch.tensor([[0.0, 0.5, -0.5]])
    old = torch.zeros(1, 3)
    adv = torch.tensor([[1.0, 1.0, -1.0]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    loss, clip_frac = clipped_policy_loss(logp, old, adv, mask, 0.2, 0.2)
    # token 1: -min(1, 1) = -1; token 2: -min(1.6487, 1.2) = -1.2; token 3: -min(-0.6065, -0.8) = 0.8
    assert float(loss) == pytest.approx((-1 - 1.2 + 0.8) / 3, abs=1e-4)
    assert float(clip_frac) == pytest.approx(2 / 3)
    # clip-higher: eps_high 0.7 leaves token 2 unclipped
    loss_hi, _ = clipped_policy_loss(logp, old, adv, mask, 0.2, 0.7)
    assert float(loss_hi) == pytest.approx((-1 - math.exp(0.5) + 0.8) / 3, abs=1e-4)


def test_token_level_aggregation_weighs_by_tokens_and_accumulates() -> None:
    # a 1-token completion with A = +1 and a 3-token completion with A = -1, ratio 1:
    # token-level mean = (-1 + 3) / 4 = 0.5 (a per-sequence mean would give 0)
    logp = torch.zeros(2, 3, requires_grad=True)
    adv = torch.tensor([[0.0, 0.0, 1.0], [-1.0, -1.0, -1.0]])
    mask = torch.tensor([[0, 0, 1], [1, 1, 1]], dtype=torch.bool)
    loss, _ = clipped_policy_loss(logp, logp.detach(), adv, mask)
    assert float(loss.detach()) == pytest.approx(0.5)
    # the same loss in two micro-batches with the step's token count as normaliser sums to the whole
    a, _ = clipped_policy_loss(logp[:1], logp[:1].detach(), adv[:1], mask[:1], normaliser=4.0)
    b, _ = clipped_policy_loss(logp[1:], logp[1:].detach(), adv[1:], mask[1:], normaliser=4.0)
    assert float((a + b).detach()) == pytest.approx(float(loss.detach()))
    # the gradient of the policy term at ratio 1 is -A / N per token
    loss.backward()
    assert logp.grad.flatten().tolist() == pytest.approx([0, 0, -0.25, 0.25, 0.25, 0.25])


def test_k3_kl_by_hand() -> None:
    logp, ref = torch.tensor([0.0, -1.0, -2.0]), torch.tensor([0.0, -2.0, -1.0])
    d = ref - logp  # 0, -1, 1
    expected = [0.0, math.exp(-1) + 1 - 1, math.exp(1) - 1 - 1]
    assert k3_kl(logp, ref).tolist() == pytest.approx(expected)
    assert bool((k3_kl(logp, ref) >= 0).all()) and d.tolist() == [0.0, -1.0, 1.0]


# -- rollout scoring and labels ----------------------------------------------------------------------------
def _sample(text: str) -> Sample:
    return Sample(text, [1, 2, 3], None, "stop")


def test_scoring_malformed_and_correct_outputs() -> None:
    outs = [
        _sample("<think></think><evidence>[1.0, 2.0]</evidence><answer>B</answer>"),
        _sample("<evidence>[1.0, 3.0]</evidence><answer>A</answer>"),
        _sample("B"),  # no tags: format broken, answer unreadable
        _sample("<evidence>[nan, 2]</evidence><answer>B</answer>"),  # bad span: format broken, answer read
        _sample(""),
    ]
    scored = score_samples(outs, "B", [(1.0, 2.0)], "option", RewardWeights(w_fmt=0.2, alpha=1.0), 4.0)
    assert [round(s.reward.total, 6) for s in scored] == [2.2, 0.2, 0.0, 1.0, 0.0]
    assert [s.parsed.format_ok for s in scored] == [True, True, False, False, False]
    # no target: only the format term counts
    blind = score_samples(outs[:2], None, [], "option", RewardWeights(), 4.0)
    assert [s.reward.total for s in blind] == [0.2, 0.2]


def test_training_target_label_modes() -> None:
    label = PseudoLabel("A", 0.75, ((0.5, 1.0),), {"A": 3, "B": 1}, 4)
    template = SolverQuestion(Request("q"), "option", "B", ((1.0, 2.0),), writer="template")
    model = SolverQuestion(Request("q"), "option", "B", ((1.0, 2.0),), writer="model")
    unknown = SolverQuestion(Request("q"), "option", None, (), writer="model")
    assert training_target(template, label, "auto") == ("B", ((1.0, 2.0),), "constructed")
    assert training_target(model, label, "auto") == ("A", ((0.5, 1.0),), "consensus")
    assert training_target(template, label, "consensus")[2] == "consensus"
    assert training_target(model, label, "constructed")[2] == "constructed"
    assert training_target(unknown, label, "constructed") == ("A", ((0.5, 1.0),), "consensus")
    empty = PseudoLabel(None, 0.0, (), {}, 4)
    assert training_target(unknown, empty, "auto") == (None, (), "none")


def test_consensus_agreement_and_attempt_rows() -> None:
    def result(answer, vote, kind="option"):
        q = SolverQuestion(Request("q"), kind, answer, ((0.0, 1.0),))
        label = PseudoLabel(vote, 0.5, (), {}, 2)
        scored = score_samples(
            [_sample("<evidence>[0, 1]</evidence><answer>B</answer>"), _sample("junk")],
            answer,
            [(0.0, 1.0)],
            kind,
            RewardWeights(),
        )
        return QuestionRollouts(q, scored, label, answer, ((0.0, 1.0),), "constructed")

    results = [
        result("B", "b"),
        result("B", "A"),
        result(None, "A"),
        result("B", None),
        result("3", "3.0", "number"),
    ]
    agreement = consensus_agreement(results)
    assert (agreement.agree, agreement.compared) == (2, 3)
    rows = attempt_rows(results[0], question_id=7, checkpoint_id=3)
    assert [r["sample_index"] for r in rows] == [0, 1]
    assert rows[0]["correct"] is True and rows[0]["iou"] == 1.0 and rows[0]["parsed_spans"] == [[0.0, 1.0]]
    assert (
        rows[1]["format_ok"] is False and rows[1]["parsed_answer"] is None and rows[1]["parsed_spans"] is None
    )
    from store.tables import Attempt

    assert set(rows[0]) <= set(Attempt.__table__.columns.keys())


# -- a seeded learning run -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def warm_tiny(tmp_path_factory):
    """tiny-qwen (hidden 128, random init) after a short format warm-up on generated clips.

    tiny-qwen, not nano: nano's GRPO steps take 25-30 s on 2 cores, too slow for a test; a random-init
    LM cannot answer the tasks, but it can learn the answer format, which the solver reward scores.
    """
    from videozero.models.loader import load_model
    from videozero.models.tiny_qwen import build_tiny_qwen
    from videozero.solver.grpo import questions_from_tasks
    from videozero.solver.tasks import TaskClips, make_tasks
    from videozero.solver.warmup import warmup
    from videozero.solver.warmup_config import WarmupConfig

    root = tmp_path_factory.mktemp("learning")
    clips = TaskClips(frames=4, size=64)
    train = questions_from_tasks(make_tasks(32, seed=1, clip_dir=root / "clips", clips=clips))
    held = questions_from_tasks(make_tasks(32, seed=2, clip_dir=root / "clips", clips=clips))
    lm = load_model(build_tiny_qwen(root / "tiny128", hidden=128, seed=0))
    warmup(
        lm,
        train,
        WarmupConfig(steps=LEARN["warmup_steps"], batch_size=8, lr=3e-3, projector_lr=3e-3, lora=None),
    )
    return lm, train, held, root


LEARN = {"warmup_steps": 50, "temperature": 0.7, "lr": 5e-4, "steps": 24}


@pytest.mark.timeout(900)
def test_grpo_raises_heldout_reward_beyond_noise_and_checkpoint_scores_the_same(warm_tiny) -> None:
    from videozero.models.engines.transformers_engine import TransformersEngine
    from videozero.models.loader import load_model
    from videozero.solver.grpo import GRPOTrainer
    from videozero.solver.grpo_config import GRPOConfig
    from videozero.solver.heldout import heldout_scores, paired_gain
    from videozero.solver.training import save_checkpoint

    lm, train, held, root = warm_tiny

    def score(model_lm):
        return heldout_scores(
            TransformersEngine(model_lm, 32),
            held,
            samples=8,
            temperature=LEARN["temperature"],
            max_new_tokens=32,
        )

    before = score(lm)
    config = GRPOConfig(
        steps=LEARN["steps"],
        prompts_per_step=4,
        group_size=8,
        temperature=LEARN["temperature"],
        max_new_tokens=32,
        lr=LEARN["lr"],
        projector_lr=LEARN["lr"],
        lora=None,
        format_floor=0.0,  # policy gradient only: no supervised anchor
        micro_batch_size=32,
        seed=0,
    )
    trainer = GRPOTrainer(lm, config)
    report = trainer.train(train)
    assert sum(s.groups_kept for s in report.steps) > 0
    after = score(trainer.lm)
    gain, se = paired_gain(before, after)
    assert gain > 2 * se, (before.reward, after.reward, gain, se)

    path = save_checkpoint(trainer.lm, root / "grpo")
    greedy = heldout_scores(TransformersEngine(trainer.lm, 32), held, max_new_tokens=32)
    reloaded = heldout_scores(TransformersEngine(load_model(path), 32), held, max_new_tokens=32)
    assert reloaded.per_question == greedy.per_question
    assert sum(greedy.per_question_accuracy) / len(held) == pytest.approx(greedy.accuracy)


def test_anchor_micro_batches_give_the_whole_batch_gradient(tmp_path) -> None:
    """The format-floor anchor runs a few sequences at a time (memory) with the one-batch gradient."""
    from videozero.answer_format import render_answer
    from videozero.models.loader import load_model
    from videozero.models.tiny_qwen import build_tiny_qwen
    from videozero.solver.grpo import GRPOTrainer, questions_from_tasks
    from videozero.solver.grpo_config import GRPOConfig
    from videozero.solver.tasks import TaskClips, make_tasks

    qs = questions_from_tasks(
        make_tasks(5, seed=3, clip_dir=tmp_path / "clips", clips=TaskClips(frames=4, size=64))
    )
    requests = [q.request for q in qs]
    targets = [render_answer(q.evidence, q.answer) for q in qs]
    directory = build_tiny_qwen(tmp_path / "tiny", hidden=64, seed=0)
    grads, losses = [], []
    for mb in (5, 2):
        trainer = GRPOTrainer(load_model(directory), GRPOConfig(lora=None, anchor_micro_batch_size=mb))
        trainer.lm.model.train()
        losses.append(trainer._supervised_pass(requests, targets))
        grads.append(torch.cat([p.grad.flatten() for p in trainer.params if p.grad is not None]))
    assert losses[0] > 0 and losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)


def test_train_solver_round_saves_and_records(tmp_path, sqlite_url: str) -> None:
    from sqlalchemy import select

    from store import open_store
    from store.checkpoints import checkpoint_row
    from store.tables import Checkpoint
    from videozero.models.loader import load_model
    from videozero.solver.grpo import questions_from_tasks
    from videozero.solver.grpo_config import GRPOConfig, LoraSettings
    from videozero.solver.round import train_solver_round
    from videozero.solver.tasks import TaskClips, make_tasks

    questions = questions_from_tasks(make_tasks(4, seed=3, clip_dir=tmp_path, clips=TaskClips(4, 64)))
    store = open_store(sqlite_url)
    config = GRPOConfig(
        steps=1, prompts_per_step=2, group_size=2, max_new_tokens=8, lora=LoraSettings(r=2, alpha=4)
    )
    start = tiny_qwen_dir("qwen3_vl")
    result = train_solver_round(start, questions, tmp_path / "round1", config)
    assert len(result.report.steps) == 1 and result.report.steps[0].groups == 2
    assert load_model(result.path).family == "qwen3_vl"
    # recorded once: recording the same directory again (a resumed stage) gets the same row
    checkpoint_id = checkpoint_row(store, result.path, "grpo", base_model=start)
    assert checkpoint_row(store, result.path, "grpo", base_model=start) == checkpoint_id
    with store.session() as s:
        (row,) = s.scalars(select(Checkpoint)).all()
    assert (row.id, row.stage, row.role, row.path, row.base_model) == (
        checkpoint_id,
        "grpo",
        "solver",
        str(result.path),
        str(start),
    )
