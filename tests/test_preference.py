"""Factorized preference pairs (D2VLM): built from a round's questions and rollouts, each rejected response
different in exactly its factor; stored, shown, exported field by field; the factored DPO's maths and a
real model trained on pairs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from store import open_store
from store.preferences import list_preferences, question_preferences, round_pair_inputs
from store.queries import QuestionFilter
from tests import browse_store
from tests.cli import assert_one_sentence_error, videozero
from tests.model_builds import tiny_qwen_dir
from videozero.answer_format import parse_answer, render_answer
from videozero.question_prompt import question_prompt
from videozero.rewards import temporal_iou
from videozero.solver.dpo import block_logps, factored_dpo_loss
from videozero.solver.preference_pairs import (
    GROUNDING_SOURCES,
    MAX_GROUNDING_IOU,
    PairLabel,
    RolloutAnswer,
    differs_in,
    pair_label,
    question_pairs,
)

# -- pair construction ------------------------------------------------------------------------------------


def _check_exact(pair, label: PairLabel) -> None:
    """The rejected response differs from the chosen one in exactly the factor its type names."""
    chosen, rejected = parse_answer(pair.chosen, label.duration), parse_answer(pair.rejected, label.duration)
    assert chosen.format_ok and rejected.format_ok and chosen.think == rejected.think == ""
    same_answer = chosen.answer == rejected.answer
    far = temporal_iou(rejected.spans, chosen.spans) <= MAX_GROUNDING_IOU
    if pair.factor == "grounding":
        assert same_answer and far and rejected.spans != chosen.spans, pair
    elif pair.factor == "answer":
        assert not same_answer and rejected.spans == chosen.spans, pair
    else:
        assert pair.factor == "both" and not same_answer and far, pair
    assert differs_in(pair, label) == pair.factor


def test_rollouts_come_before_perturbations_and_each_pair_differs_in_its_factor() -> None:
    label = PairLabel("B", ((10.0, 14.0),), "option", ("x", "y", "z"), 60.0)
    rollouts = [
        RolloutAnswer(1, "B", ((11.0, 13.5),)),  # right on both: no pair
        RolloutAnswer(2, "B", ((40.0, 45.0),)),  # right answer, evidence elsewhere: grounding
        RolloutAnswer(3, "C", ((10.0, 14.0),)),  # wrong answer, right evidence: answer
        RolloutAnswer(4, "A", ((30.0, 31.0),)),  # wrong on both: answer (its answer) and both
    ]
    pairs = question_pairs(7, label, rollouts, [(20.0, 25.0)], 6, np.random.default_rng(0))
    assert [p.factor for p in pairs] == ["grounding", "answer", "both"] * 2
    by = {(p.factor, p.attempt_id) for p in pairs if p.source == "rollout"}
    assert ("grounding", 2) in by and ("both", 4) in by and {("answer", 3), ("answer", 4)} <= by
    assert [p.source for p in pairs[:3]] == ["rollout"] * 3  # real rollouts first
    grounding = [p for p in pairs if p.factor == "grounding"]
    assert grounding[1].source in GROUNDING_SOURCES  # then perturbations
    assert len({p.rejected for p in pairs}) == len(pairs)
    for p in pairs:
        assert p.question_id == 7 and p.chosen == render_answer([(10.0, 14.0)], "B")
        _check_exact(p, label)


@pytest.mark.parametrize("seed", range(40))
def test_random_labels_give_pairs_that_differ_in_exactly_their_factor(seed: int) -> None:
    rng = np.random.default_rng(seed)
    duration = float(rng.uniform(5, 120))
    kind = ["option", "permutation", "number", "text"][seed % 4]
    spans = []
    for _ in range(int(rng.integers(1, 4)) if kind == "permutation" else 1):
        s = float(rng.uniform(0, duration - 1))
        spans.append((s, min(duration, s + float(rng.uniform(0.3, duration / 3)))))
    answer = {"option": "C", "permutation": "B, A, C", "number": "3", "text": "a red ball"}[kind]
    label = PairLabel(
        answer, tuple(sorted(spans)), kind, ("p", "q", "r", "s") if kind == "option" else (), duration
    )
    rollouts = []
    for i in range(6):
        s = float(rng.uniform(0, duration - 0.5))
        wrong = {"option": "A", "permutation": "A, B, C", "number": "5", "text": "a blue cube"}[kind]
        rollouts.append(RolloutAnswer(i, [answer, wrong][i % 2], ((s, s + float(rng.uniform(0.2, 5))),)))
    events = [(float(a), float(a) + 2) for a in rng.uniform(0, duration - 2, 3)]
    pairs = question_pairs(1, label, rollouts, events, 9, rng)
    assert pairs
    for p in pairs:
        _check_exact(p, label)
    if kind == "text":  # free text has no synthetic wrong answer: its answer pairs are real rollouts
        assert all(p.source == "rollout" for p in pairs if p.factor != "grounding")


def test_a_label_without_evidence_length_or_answer_gives_no_pair() -> None:
    rng = np.random.default_rng(0)
    assert question_pairs(1, PairLabel("A", ((4.0, 4.0),), "option", ("x", "y")), [], [], 3, rng) == []
    assert question_pairs(1, PairLabel("??", ((1.0, 4.0),), "option", ("x", "y")), [], [], 3, rng) == []
    row = {"id": 3, "answer": None, "evidence": [], "consensus_answer": None, "writer": "model"}
    assert pair_label(row) is None
    # stored spans are untrusted: malformed ones give no pair (label) or are left out (rollout)
    from videozero.solver.preference_pairs import stored_question_pairs

    hostile = {"id": 4, "writer": "model", "consensus_answer": "A", "options": ["x", "y"], "duration_s": 9.0}
    for bad in ([["x", 1]], [[1.0, 2.0, 3.0]], "ab", [[1.0, float("nan")]]):
        assert stored_question_pairs(hostile | {"consensus_evidence": bad}, 3, (0, 0)) == []
    good = hostile | {
        "consensus_evidence": [[1.0, 3.0]],
        "rollouts": [{"id": 9, "answer": "B", "spans": [["x", 1]]}],
    }
    pairs = stored_question_pairs(good, 3, (0, 0))
    assert pairs and all(p.source != "rollout" for p in pairs)


# -- the factored DPO -------------------------------------------------------------------------------------


def test_factored_dpo_loss_by_hand() -> None:
    # blocks are (evidence, answer, rest)
    chosen = torch.tensor([[-1.0, -2.0, -0.5], [-3.0, -1.0, -0.5]])
    rejected = torch.tensor([[-4.0, -2.0, -0.5], [-3.0, -5.0, -1.5]])
    ref_c = torch.tensor([[-2.0, -2.0, -0.5], [-3.0, -2.0, -0.5]])
    ref_r = torch.tensor([[-2.0, -2.0, -0.5], [-3.0, -2.0, -0.5]])
    loss, margin = factored_dpo_loss(chosen, rejected, ref_c, ref_r, beta=0.5, answer_weight=2.0)
    # pair 0: evidence (−1+2) − (−4+2) = 3; pair 1: answer 2 × ((−1+2) − (−5+2)) = 8, rest 1
    assert margin.tolist() == [3.0, 9.0]
    expected = (-math.log(1 / (1 + math.exp(-1.5))) - math.log(1 / (1 + math.exp(-4.5)))) / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    free = factored_dpo_loss(chosen, rejected, None, None, beta=1.0, grounding_weight=0.0)[1]
    assert free.tolist() == [0.0, 5.0]  # reference-free (answer 4 + rest 1), evidence not counted
    # a weight of 0 stops that block's gradient
    c = chosen.clone().requires_grad_(True)
    factored_dpo_loss(c, rejected, ref_c, ref_r, beta=1.0, grounding_weight=0.0)[0].backward()
    assert c.grad[:, 0].abs().sum() == 0 and c.grad[:, 1].abs().sum() > 0


@pytest.fixture(scope="module")
def tiny_pairs(tmp_path_factory):
    from videozero.models.loader import load_model
    from videozero.solver.dpo import PairExample
    from videozero.solver.grpo import questions_from_tasks
    from videozero.solver.tasks import TaskClips, make_tasks

    root = tmp_path_factory.mktemp("dpo")
    questions = questions_from_tasks(
        make_tasks(6, seed=3, clip_dir=root / "clips", clips=TaskClips(frames=4, size=64))
    )
    examples = []
    for q in questions:
        label = PairLabel(q.answer, tuple(q.evidence), q.kind, ("a", "b", "c", "d"), q.duration)
        for p in question_pairs(0, label, [], [], 3, np.random.default_rng(0)):
            examples.append(PairExample(q.request, p.chosen, p.rejected, p.factor))
    return load_model(tiny_qwen_dir()), examples


def test_block_log_probs_split_the_sequence_and_answer_pairs_share_their_evidence(tiny_pairs) -> None:
    from videozero.models.prompt import build_batch, token_logprobs
    from videozero.solver.dpo import DPOTrainer

    lm, examples = tiny_pairs
    trainer = DPOTrainer(lm, _config(lora=None))
    answer_pairs = [x for x in examples if x.factor == "answer"][:3]
    chosen, rejected = trainer.pair_blocks(answer_pairs)
    assert torch.allclose(chosen[:, 0], rejected[:, 0], atol=1e-4)  # same evidence tokens, same prefix
    assert not torch.allclose(chosen[:, 1], rejected[:, 1])
    batch = build_batch(lm, [answer_pairs[0].request], [trainer.tokens(answer_pairs[0].chosen)])
    logp = token_logprobs(lm.model, batch)
    blocks = block_logps(logp, batch.regions, batch.completion_mask)
    assert blocks.sum().item() == pytest.approx(logp.sum().item(), abs=1e-4)
    assert (blocks[0, :2] < 0).all()  # the evidence and the answer blocks hold tokens


def _config(**update):
    from videozero.solver.preference_config import PreferenceConfig

    return PreferenceConfig(
        **({"steps": 12, "pairs_per_step": 6, "micro_batch_pairs": 3, "lr": 3e-3} | update)
    )


def test_dpo_on_a_real_model_starts_at_log_2_and_comes_to_prefer_the_chosen(tiny_pairs, tmp_path) -> None:
    from videozero.models.loader import load_model
    from videozero.solver.dpo import DPOTrainer

    _, examples = tiny_pairs
    lm = load_model(tiny_qwen_dir())
    trainer = DPOTrainer(lm, _config(lora=None, beta=0.5))
    steps = trainer.train(examples)
    assert len(steps) == 12
    assert steps[0].loss == pytest.approx(math.log(2), abs=1e-4)  # policy = reference before the first update
    assert steps[-1].loss < 0.6 and steps[-1].accuracy > 0.5 and steps[-1].margin > 0
    # after training, the policy prefers the chosen responses more than the starting model did
    chosen, rejected = trainer.pair_blocks(examples)
    assert (chosen.sum(-1) - rejected.sum(-1)).mean() > 0
    # reference-free and a wall-time budget
    free = DPOTrainer(load_model(tiny_qwen_dir()), _config(reference="none"))
    assert len(free.train(examples, steps=50, seconds=0.0)) == 0


# -- stored, shown and exported ---------------------------------------------------------------------------


def _demo(url: str, tmp_path: Path):
    store = open_store(url)
    built = browse_store.build(store, url, tmp_path)
    yield store, built
    store.dispose()


@pytest.fixture
def demo(db_url, tmp_path):
    """The browser's demo store (a mined clip, a round's accepted question and its rollouts), on SQLite
    and on PostgreSQL."""
    yield from _demo(db_url, tmp_path)


@pytest.fixture
def demo_sqlite(sqlite_url, tmp_path):
    yield from _demo(sqlite_url, tmp_path)


def _stage_config(built, per_question: int = 4):
    from videozero.run_config import RunConfig

    return RunConfig.model_validate(
        {"workdir": str(built.workdir), "db": built.url, "preference": {"pairs_per_question": per_question}}
    )


def test_round_pairs_are_stored_once_shown_and_exported_field_by_field(demo, tmp_path) -> None:
    from videozero.export import write_export
    from videozero.stages.preference import build_round_pairs
    from videozero.stages.run import round_id_of

    store, built = demo
    config = _stage_config(built)
    pairs = build_round_pairs(store, config, built.run_id, 0)
    again = build_round_pairs(store, config, built.run_id, 0)  # a rerun replaces, never doubles
    assert [p.rejected for p in pairs] == [p.rejected for p in again]
    with store.session() as s:
        inputs = round_pair_inputs(s, built.run_id, round_id_of(store, built.run_id, 0))
        stored = question_preferences(s, built.question_id)
    assert [r["id"] for r in inputs] == [built.question_id]  # the round's accepted training question only
    assert len(inputs[0]["rollouts"]) == 2 and inputs[0]["events"]  # full rollouts; mined events
    assert len(stored) == len(pairs) == 4
    label = pair_label(inputs[0])
    for p in pairs:
        _check_exact(p, label)
    # the full rollout that was wrong in both gave the answer and the both pairs
    sources = {(p["factor"], p["source"]) for p in stored}
    assert ("answer", "rollout") in sources and ("both", "rollout") in sources
    assert {p["factor"] for p in stored} == {"grounding", "answer", "both"}

    with store.session() as s:
        rows = list_preferences(s, QuestionFilter(run=built.run_name, round=0))
        only = list_preferences(s, QuestionFilter(run=built.run_name), ["answer"])
    assert len(rows) == 4 and {r["factor"] for r in only} == {"answer"}

    trl = tmp_path / "out" / "trl.jsonl"
    assert write_export(rows, trl, "trl-dpo") == 4
    prompt = question_prompt(
        "When is the red square on screen?", ["from 2.0 s to 4.0 s", "from 5.0 s to 6.0 s"]
    )
    for row, pair in zip((json.loads(x) for x in trl.read_text().splitlines()), rows, strict=True):
        assert set(row) == {
            "prompt",
            "chosen",
            "rejected",
            "images",
            "video",
            "question_id",
            "factor",
            "source",
        }
        assert row["chosen"] == [{"role": "assistant", "content": [{"type": "text", "text": pair["chosen"]}]}]
        assert row["rejected"] == [
            {"role": "assistant", "content": [{"type": "text", "text": pair["rejected"]}]}
        ]
        assert (row["factor"], row["source"], row["question_id"]) == (
            pair["factor"],
            pair["source"],
            built.question_id,
        )
        assert row["video"] == str(built.video_path)
        (turn,) = row["prompt"]
        assert turn["role"] == "user" and turn["content"][-1] == {"type": "text", "text": prompt}
        blocks = turn["content"][:-1]
        images = [b for b in blocks if b["type"] == "image"]
        assert images == [{"type": "image"}] * len(row["images"])  # one file per image block, in order
        labels = [b["text"] for b in blocks if b["type"] == "text"]
        assert labels[-1] == "Query:" and all(x.endswith("s") for x in labels[:-1])  # frames, then the query
        frames = [float(x[:-1]) for x in labels[:-1]]
        assert frames == sorted(frames) and 1 < len(frames) <= 32 and frames[-1] <= built.duration
        for path in row["images"]:
            assert Path(path).is_absolute() and Image.open(path).format == "PNG"
    openrlhf = tmp_path / "out" / "o.jsonl"
    assert write_export(only, openrlhf, "openrlhf-dpo") == len(only)
    row = json.loads(openrlhf.read_text().splitlines()[0])
    assert row["prompt"] == [{"role": "user", "content": prompt}]
    assert row["chosen"] == [{"role": "assistant", "content": only[0]["chosen"]}]
    assert row["rejected"] == [{"role": "assistant", "content": only[0]["rejected"]}]
    assert row["factor"] == "answer" and row["video"] == str(built.video_path) and len(row["images"]) == 1


def test_qa_commands_build_show_and_export_pairs(demo_sqlite, tmp_path) -> None:
    _, built = demo_sqlite
    env = {"COLUMNS": "200", "NO_COLOR": "1"}
    made = videozero(
        "qa", "pairs", "--run", built.run_name, "--db", built.url, "--per-question", "3", env=env
    )
    assert made.returncode == 0, made.stderr[-2000:]
    assert "grounding" in made.stdout and " 3 " in made.stdout
    shown = videozero("qa", "show", str(built.question_id), "--db", built.url, env=env)
    assert shown.returncode == 0, shown.stderr[-2000:]
    text = " ".join(shown.stdout.split())
    assert (
        "preference pairs" in text
        and "chosen: <think></think><evidence>[2.0, 4.0]</evidence><answer>A</answer>" in text
    )
    as_json = json.loads(
        videozero("qa", "show", str(built.question_id), "--db", built.url, "--format", "json").stdout
    )
    assert [p["factor"] for p in as_json["preferences"]] == ["grounding", "answer", "both"]
    out = tmp_path / "pairs.jsonl"
    done = videozero("qa", "export", "--shape", "trl-dpo", "--factor", "both", "--out", str(out), "--db", built.url,
                     "--run", built.run_name)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "wrote 1 preference pairs" in " ".join(done.stdout.split())
    wrong = videozero(
        "qa", "export", "--shape", "trl", "--factor", "both", "--out", str(out), "--db", built.url
    )
    assert_one_sentence_error(wrong, "--factor selects preference pairs")
    missing = videozero("qa", "pairs", "--run", "nope", "--db", built.url)
    assert_one_sentence_error(missing, "No run named 'nope'")
