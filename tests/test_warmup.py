"""Warm-up: generated tasks and their baselines, supervised steps that lower the loss, the CLI command."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from tests.cli import videozero
from tests.model_builds import tiny_qwen_dir
from videozero.models.prompt import build_batch, token_logprobs
from videozero.rewards import temporal_iou
from videozero.solver.grpo import questions_from_tasks
from videozero.solver.tasks import FAMILIES, TaskClips, constant_baseline, make_tasks
from videozero.solver.warmup import supervised_targets, warmup
from videozero.solver.warmup_config import WarmupConfig

SMALL = TaskClips(frames=4, size=64)


def test_tasks_are_true_to_their_clips(tmp_path) -> None:
    tasks = make_tasks(8, seed=5, clip_dir=tmp_path, clips=TaskClips())
    assert [t.family for t in tasks] == list(FAMILIES) * 2
    for t in tasks:
        times = t.video.timestamps
        assert np.allclose(times, np.arange(8) * 0.5)
        # frames inside the evidence differ from the background, frames outside do not
        inside = np.array([any(s <= x < e for s, e in t.evidence) for x in times])
        changed = (
            np.abs(t.video.frames.astype(int) - np.median(t.video.frames, axis=0)).max(axis=(1, 2, 3)) > 60
        )
        assert (inside == changed).all(), (t.family, t.evidence)
        if t.family == "count":
            assert int(t.answer) == len(t.evidence)
        else:
            assert t.answer in "ABCD"[: len(t.options)]
        assert "</evidence><answer>" in t.prompt  # the format instruction
    # seeded: the same seed gives the same tasks
    again = make_tasks(8, seed=5, clip_dir=tmp_path / "again")
    assert [(t.answer, t.evidence) for t in again] == [(t.answer, t.evidence) for t in tasks]


def test_constant_baseline_by_hand(tmp_path) -> None:
    tasks = make_tasks(12, seed=9, clip_dir=tmp_path, families=["count"], clips=SMALL)
    base = constant_baseline(tasks)["count"]
    answers = [t.answer for t in tasks]
    best = max(set(answers), key=lambda a: (answers.count(a), a))
    assert base.accuracy == pytest.approx(answers.count(best) / len(tasks))
    assert base.iou == pytest.approx(np.mean([temporal_iou([base.span], t.evidence) for t in tasks]))
    # no constant span on the frame grid does better
    assert all(
        np.mean([temporal_iou([(a / 2, b / 2)], t.evidence) for t in tasks]) <= base.iou + 1e-9
        for a in range(5)
        for b in range(a + 1, 5)
    )


def test_warmup_lowers_the_loss_and_the_checkpoint_reloads(tmp_path) -> None:
    from videozero.models.loader import load_model
    from videozero.solver.training import save_checkpoint

    lm = load_model(tiny_qwen_dir("qwen3_vl"))
    questions = questions_from_tasks(make_tasks(8, seed=1, clip_dir=tmp_path, clips=SMALL))
    targets = supervised_targets(questions)
    batch = build_batch(lm, [q.request for q in questions], targets)

    def nll() -> float:
        with torch.no_grad():
            return float(-(token_logprobs(lm.model, batch).sum() / batch.completion_mask.sum()))

    before = nll()
    report = warmup(
        lm, questions, WarmupConfig(steps=12, batch_size=8, lr=1e-2, projector_lr=1e-2, lora=None)
    )
    after = nll()
    assert after < before - 1.0, (before, after)
    assert report.steps == 12 and report.last_loss < report.first_loss
    path = save_checkpoint(lm, tmp_path / "warm")
    reloaded = load_model(path)
    with torch.no_grad():
        again = float(-(token_logprobs(reloaded.model, batch).sum() / batch.completion_mask.sum()))
    assert again == pytest.approx(after, abs=1e-5)


def test_micro_batches_give_the_same_steps_as_the_whole_batch(tmp_path) -> None:
    from videozero.models.loader import load_model

    questions = questions_from_tasks(make_tasks(8, seed=1, clip_dir=tmp_path, clips=SMALL))
    reports = []
    for micro in (8, 3, 1):  # 3 splits 8 unevenly: the loss is still the batch's mean token loss
        lm = load_model(tiny_qwen_dir("qwen3_vl"))
        cfg = WarmupConfig(
            steps=3, batch_size=8, micro_batch_size=micro, lr=1e-3, projector_lr=1e-3, lora=None
        )
        reports.append(warmup(lm, questions, cfg))
    whole = reports[0]
    for r in reports[1:]:
        assert r.first_loss == pytest.approx(whole.first_loss, abs=1e-5)
        assert r.last_loss == pytest.approx(whole.last_loss, abs=1e-3)


def test_warmup_with_lora_merges_into_a_plain_checkpoint(tmp_path) -> None:
    from videozero.models.loader import load_model
    from videozero.solver.grpo_config import LoraSettings
    from videozero.solver.training import save_checkpoint

    lm = load_model(tiny_qwen_dir("qwen3_vl"))
    questions = questions_from_tasks(make_tasks(4, seed=2, clip_dir=tmp_path, clips=SMALL))
    warmup(lm, questions, WarmupConfig(steps=3, batch_size=4, lr=5e-2, lora=LoraSettings(r=4, alpha=8)))
    assert hasattr(lm.model, "peft_config")
    batch = build_batch(lm, [q.request for q in questions], supervised_targets(questions))
    with torch.no_grad():
        trained = token_logprobs(lm.model, batch)
    path = save_checkpoint(lm, tmp_path / "merged")
    assert not (path / "adapter_config.json").exists()
    with torch.no_grad():
        reloaded = token_logprobs(load_model(path).model, batch)
    assert torch.allclose(trained, reloaded, atol=1e-4)


def test_cli_defaults_are_the_config_defaults() -> None:
    from videozero.cli.warmup import warmup as command

    params = inspect.signature(command).parameters
    defaults = WarmupConfig()
    for name in ("steps", "batch_size", "lr", "projector_lr", "seed"):
        assert params[name].default == getattr(defaults, name), name
    assert params["lora_rank"].default == defaults.lora.r
    assert (
        params["tasks"].default == defaults.train_tasks
        and params["heldout"].default == defaults.heldout_tasks
    )


def test_warmup_command(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    out = tmp_path / "tiny-warm"
    proc = videozero(
        "model", "warmup", str(tiny_qwen_dir("qwen3_vl")), "--out", str(out), "--steps", "2",
        "--tasks", "4", "--heldout", "4", "--lora-rank", "0", "--db", db,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "held-out tasks" in proc.stdout and "constant" in proc.stdout and "checkpoint" in proc.stdout
    assert (out / "config.json").is_file()
    from sqlalchemy import select

    from store import open_store
    from store.tables import Checkpoint

    with open_store(db).session() as s:
        rows = s.scalars(select(Checkpoint)).all()
    assert [(r.stage, r.role, r.path) for r in rows] == [("warmup", "solver", str(out))]
    bad = videozero("model", "warmup", str(tmp_path / "nowhere"), "--db", db)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "does not exist" in bad.stderr
