"""The questioner: template families against the generator's truth, verification arithmetic and verdicts,
a solver with signal losing accuracy when the evidence is masked, and the question round end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from store import open_store
from store.runs import attach_videos, claim_run
from store.tables import Attempt, Question, Video
from tests.model_builds import tiny_qwen_dir
from videozero.models.engines.base import GenerationEngine, Sample, SamplingParams
from videozero.models.prompt import Request, VideoInput
from videozero.question_prompt import option_letter
from videozero.questioner.candidate import Candidate, query_images
from videozero.questioner.families import MAX_LEVEL, propose
from videozero.questioner.round_config import FAMILIES
from videozero.questioner.verify import BLIND_ANSWERABLE, OUT_OF_BAND, VerifyItem, verify
from videozero.questioner.verify_config import VerifyConfig
from videozero.rewards import temporal_iou
from videozero.stages.evidence import evidence_loader, load_video_evidence
from videozero.video.synthetic import ClipSpec, EventSpec, ShotSpec, write_clip

FRAME_S = 0.5  # mining samples 2 frames per second


def _spec(seed: int) -> ClipSpec:
    """Four shots of distinct backgrounds, one event in each of three of them."""
    rng = np.random.default_rng(seed)
    colours = [tuple(int(x) for x in rng.integers(30, 220, 3)) for _ in range(4)]
    patterns = ["stripes", "checker", "rings", "flat"]
    return ClipSpec(
        shots=[ShotSpec(duration_s=4.0, colour=c, pattern=p) for c, p in zip(colours, patterns, strict=True)],
        events=[
            EventSpec(kind="appear", start_s=1.0, end_s=2.5, colour=(230, 40, 40), at=(0.6, 0.45)),
            EventSpec(
                kind="move",
                start_s=5.0,
                end_s=7.0,
                shape="disc",
                colour=(250, 250, 250),
                at=(0.2, 0.5),
                to=(0.8, 0.5),
            ),
            EventSpec(
                kind="recolour",
                start_s=13.0,
                end_s=14.5,
                colour=(30, 30, 200),
                new_colour=(250, 220, 0),
                at=(0.5, 0.5),
            ),
        ],
        seed=seed,
    )


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    """Three generated clips, mined into a store; the run holds them (one held out)."""
    from videozero.stages.mine import mine_videos

    root = tmp_path_factory.mktemp("questioner")
    truths = {}
    for seed in range(3):
        path = root / f"clip{seed}.mp4"
        truths[str(path)] = write_clip(_spec(seed), path)
    store = open_store(f"sqlite:///{root / 'store.db'}")
    mine_videos(store, list(map(Path, truths)), cache_dir=root / "cache")
    with store.session() as s:
        videos = {v.id: v.path for v in s.scalars(select(Video))}
    return store, root, truths, videos


def _best_iou(span, truth_spans):
    return max(temporal_iou([span], [t]) for t in truth_spans)


def test_every_family_answer_and_evidence_match_the_generator(mined):
    store, root, truths, videos = mined
    seen = set()
    for video_id, path in videos.items():
        truth = truths[path]
        ev = load_video_evidence(store, video_id, root / "cache")
        true_spans = list(truth.shots) + [(e.start_s, e.end_s) for e in truth.events]
        for level in range(MAX_LEVEL + 1):
            for c in propose(ev, dict.fromkeys(FAMILIES, 2), dict.fromkeys(FAMILIES, level), seed=level):
                seen.add(c.family)
                assert all(0 <= s < e <= truth.duration_s + 1e-6 for s, e in c.evidence), c
                query = {q["label"]: q for q in c.spec.get("query", [])}
                if c.family in ("grounding", "semantic_grounding"):
                    letter_index = ord(c.answer) - ord("A")
                    assert tuple(c.spec["option_spans"][letter_index]) == c.evidence[0]
                    # the evidence is a true shot or event, within a sampled frame at either end
                    assert _best_iou(c.evidence[0], true_spans) >= 0.5, (c.evidence, true_spans)
                    others = [tuple(o) for i, o in enumerate(c.spec["option_spans"]) if i != letter_index]
                    assert all(temporal_iou([o], [c.evidence[0]]) < 0.1 for o in others)
                if c.family == "grounding":
                    (t,) = query["Query"]["times"]
                    assert c.evidence[0][0] - 1e-6 <= t <= c.evidence[0][1] + 1e-6
                if c.family == "ordering":
                    times = [query[f"Clip {i + 1}"]["times"][0] for i in range(len(query))]
                    order = [int(x) - 1 for x in c.answer.split(",")]
                    assert [times[i] for i in order] == sorted(times)
                    for t in times:
                        assert any(s - 1e-6 <= t <= e + 1e-6 for s, e in c.evidence)
                if c.family == "arrow_of_time":
                    item = query["Clip 1"]
                    assert item["times"] == sorted(item["times"]) and len(set(item["times"])) == len(
                        item["times"]
                    )
                    assert c.answer == ("B" if item["reverse"] else "A")
                if c.family == "what_next":
                    moment = query["Moment"]["times"][0]
                    right = query[f"Option {c.answer}"]["times"][0]
                    assert c.evidence == ((moment, right),) and right > moment
                    for label, q in query.items():
                        if label.startswith("Option") and label != f"Option {c.answer}":
                            assert abs(q["times"][0] - right) > 1.0
                if c.family == "counting":
                    a, b = c.spec["window"]
                    assert int(c.answer) == sum(a < cut < b for cut in truth.cuts_s)
                    for cut in truth.cuts_s:  # window bounds never sit on a cut
                        assert abs(a - cut) >= 0.5 - FRAME_S and abs(b - cut) >= 0.5 - FRAME_S
    assert seen == set(FAMILIES)


def test_levels_turn_the_knobs(mined):
    store, root, _, videos = mined
    ev = load_video_evidence(store, next(iter(videos)), root / "cache")
    low = propose(ev, {"grounding": 3, "ordering": 3}, {"grounding": 0, "ordering": 0}, seed=1)
    high = propose(ev, {"grounding": 3, "ordering": 3}, {"grounding": 2, "ordering": 2}, seed=1)
    n_opts = lambda cs, f: {len(c.options) for c in cs if c.family == f}  # noqa: E731
    n_clips = lambda cs: {len(c.answer.split(",")) for c in cs if c.family == "ordering"}  # noqa: E731
    assert n_opts(low, "grounding") == {2} and max(n_opts(high, "grounding")) > 2
    assert n_clips(low) == {2} and max(n_clips(high)) > 2


# --- verification with scripted solvers -------------------------------------------------------------------


class ScriptedSolver(GenerationEngine):
    """Answers by a rule of (request, sample index): a solver whose behaviour the test fixes."""

    def __init__(self, rule):
        self.rule = rule

    def generate(self, requests, params: SamplingParams):
        return [[Sample(self.rule(r, k), [1, 2], None, "stop") for k in range(params.n)] for r in requests]


def _answer(letter: str, span=(2.0, 4.0)) -> str:
    return f"<think></think><evidence>[{span[0]}, {span[1]}]</evidence><answer>{letter}</answer>"


def _item(candidate: Candidate, n_frames: int = 20) -> VerifyItem:
    frames = np.full((n_frames, 32, 32, 3), 100, dtype=np.uint8)
    video = VideoInput(frames, np.arange(n_frames) * 0.5)
    return VerifyItem(candidate, video, video, duration=n_frames * 0.5, seed=1)


def _mc(answer="A") -> Candidate:
    return Candidate("grounding", "Which?", answer, ((2.0, 4.0),), ("x", "y"), spec={"answer_kind": "option"})


def test_a_question_answerable_blind_is_rejected_as_such():
    solver = ScriptedSolver(lambda r, k: _answer("A"))  # right with or without the video
    (v,) = verify(solver, [_item(_mc("A"))], VerifyConfig(n_full=4, n_probe=2))
    assert (v.status, v.reason) == ("rejected", BLIND_ANSWERABLE)
    assert v.scores["blind"] == 1.0 and v.r_dep == 0.0


def test_verification_arithmetic_and_acceptance():
    # with the video: right on even samples (p = 0.5); blind and masked: always wrong
    def rule(r: Request, k: int) -> str:
        masked = r.video is not None and r.video.frames.min() == 0
        if r.video is None or masked:
            return _answer("B")
        return _answer("A" if k % 2 == 0 else "B")

    (v,) = verify(ScriptedSolver(rule), [_item(_mc("A"))], VerifyConfig(n_full=4, n_probe=2))
    assert (v.status, v.reason) == ("accepted", None)
    assert v.p == 0.5 and v.r_learn == 0.5 and v.r_dep == 0.5 and v.necessity == 0.5
    assert set(v.rollouts) == {"full", "blind", "masked", "key_only", "random_span"}
    assert len(v.rollouts["full"].samples) == 4 and len(v.rollouts["blind"].samples) == 2
    assert 0 < v.r_evid <= 1


def test_always_right_is_out_of_band_and_unformatted_has_no_answer():
    always = ScriptedSolver(lambda r, k: _answer("A") if r.video is not None else _answer("B"))
    (v,) = verify(always, [_item(_mc("A"))], VerifyConfig(n_full=4, n_probe=2))
    assert (v.status, v.reason, v.r_learn) == ("rejected", OUT_OF_BAND, 0.0)
    model_written = Candidate(
        "model", "Which?", "A", ((2.0, 4.0),), ("x", "y"), writer="model", spec={"answer_kind": "option"}
    )
    (v,) = verify(
        ScriptedSolver(lambda r, k: "no idea"), [_item(model_written)], VerifyConfig(n_full=4, n_probe=2)
    )
    assert v.status == "rejected" and v.reason.startswith("no answer") and v.consensus_answer is None


_OPTION_SPAN = re.compile(r"^([A-E])\. from ([\d.]+) s to ([\d.]+) s$", re.M)


class PixelMatchingSolver(GenerationEngine):
    """Answers grounding questions by looking: the video frame most like the query image gives the
    time, and the option span holding it the answer. It has signal exactly where the evidence is shown."""

    def generate(self, requests, params):
        return [[Sample(self._answer(r), [1], None, "stop")] * params.n for r in requests]

    def _answer(self, r: Request) -> str:
        query = next(img for label, img in r.images if label == "Query").astype(np.float32)
        options = [(m[1], float(m[2]), float(m[3])) for m in _OPTION_SPAN.finditer(r.question)]
        if r.video is None:
            return _answer("A")
        diffs = [np.abs(f.astype(np.float32) - query).mean() for f in r.video.frames]
        t = float(r.video.timestamps[int(np.argmin(diffs))])
        for letter, s, e in options:
            if s - 0.1 <= t <= e + 0.1:
                return _answer(letter, (s, e))
        return _answer("A")


def test_masking_the_evidence_lowers_the_accuracy_of_a_solver_with_signal(mined):
    store, root, _, videos = mined
    items = []
    for video_id in videos:
        ev = load_video_evidence(store, video_id, root / "cache")
        dense = VideoInput(ev.frames, ev.timestamps)
        for c in propose(ev, {"grounding": 4}, {"grounding": 2}, seed=3):
            items.append(VerifyItem(c, dense, dense, ev.duration, ev.segments, seed=len(items)))
    assert len(items) >= 6
    verdicts = verify(PixelMatchingSolver(), items, VerifyConfig(n_full=2, n_probe=1, blind_max=1.0))
    full = np.mean([v.scores["full"] for v in verdicts])
    masked = np.mean([v.scores["masked"] for v in verdicts])
    assert full >= 0.8 and masked <= full - 0.5, (full, masked)
    assert np.mean([v.necessity for v in verdicts]) > 0.5
    # with only the evidence shown the solver still finds it; with a random span it does not
    assert np.mean([v.specificity for v in verdicts]) > 0


def test_query_images_are_cut_from_the_dense_frames_in_order():
    frames = np.stack([np.full((4, 4, 3), i, dtype=np.uint8) for i in range(10)])
    video = VideoInput(frames, np.arange(10) * 0.5)
    spec = {
        "query": [
            {"label": "Clip 1", "times": [1.0, 2.0, 3.0], "reverse": True},
            {"label": "Moment", "times": [0.4]},
        ]
    }
    images = query_images(video, spec)
    assert [label for label, _ in images] == [
        "Clip 1, frame 1",
        "Clip 1, frame 2",
        "Clip 1, frame 3",
        "Moment",
    ]
    assert [int(img[0, 0, 0]) for _, img in images] == [6, 4, 2, 1]


# --- the round over the store, with the real tiny model --------------------------------------------------


@pytest.mark.slow
def test_question_round_with_the_tiny_model_stores_everything_and_resumes(mined, tmp_path):
    from store.checkpoints import checkpoint_row
    from videozero.models.engines.transformers_engine import TransformersEngine
    from videozero.models.loader import load_model
    from videozero.questioner.round_config import QuestionerConfig
    from videozero.stages.question import question_round

    store, root, _, videos = mined
    run_id = claim_run(store, "round-test", {})
    splits = attach_videos(store, run_id, list(videos))
    assert sorted(splits.values()) == ["heldout", "train", "train"]
    model = tiny_qwen_dir()
    engine = TransformersEngine(load_model(model, device="cpu"), batch_size=16)
    ckpt = checkpoint_row(store, model, "base", run_id=run_id)
    config = QuestionerConfig(
        per_video=6,
        heldout_per_video=6,
        solver_max_frames=8,
        verify=VerifyConfig(n_full=2, n_probe=1, max_new_tokens=16),
    )
    summary = question_round(store, run_id, 0, engine, ckpt, config, cache_dir=root / "cache")
    with store.session() as s:
        qs = s.scalars(select(Question).where(Question.run_id == run_id)).all()
        n_attempts = s.scalar(select(func.count(Attempt.id)))
    train = [q for q in qs if q.split == "train"]
    assert {q.split for q in qs} == {"train", "heldout"}
    assert all(q.status in ("accepted", "rejected") for q in qs)  # nothing left unjudged
    assert all(q.reject_reason for q in qs if q.status == "rejected")
    verified = [q for q in train if q.verification is not None]
    assert verified and all(
        q.r_learn is not None and q.r_dep is not None and q.r_evid is not None for q in verified
    )
    for q in verified:
        with store.session() as s:
            modes = dict(
                s.execute(
                    select(Attempt.mode, func.count())
                    .where(Attempt.question_id == q.id)
                    .group_by(Attempt.mode)
                ).all()
            )
        assert modes["full"] == 2 and modes["blind"] == 1 and modes.get("masked") == 1
    assert sum(sum(c.values()) for c in summary.counts.values()) == len(train)
    # a second call on the same round adds nothing
    question_round(store, run_id, 0, engine, ckpt, config, cache_dir=root / "cache")
    with store.session() as s:
        assert s.scalar(select(func.count(Question.id)).where(Question.run_id == run_id)) == len(qs)
        assert s.scalar(select(func.count(Attempt.id))) == n_attempts


def test_option_letters_of_families_are_uniformly_placed(mined):
    store, root, _, videos = mined
    letters = []
    for video_id in videos:
        ev = load_video_evidence(store, video_id, root / "cache")
        for seed in range(6):
            letters += [c.answer for c in propose(ev, {"grounding": 2, "arrow_of_time": 2}, None, seed=seed)]
    counts = {option_letter(i): letters.count(option_letter(i)) for i in range(2)}
    assert min(counts.values()) >= 0.25 * len(letters), counts  # no constant answer


@pytest.mark.slow
def test_questioner_grpo_step_with_the_tiny_model_updates_the_writer(mined, tmp_path):
    """A random-init writer writes garbage: every write scores invalid_reward, no group varies, the
    parse rate is under the floor, so the supervised format anchor is what moves the weights."""
    import torch

    from videozero.models.engines.transformers_engine import TransformersEngine
    from videozero.models.loader import load_model
    from videozero.questioner.training import QuestionerTrainer, WriterVideo
    from videozero.questioner.training_config import QuestionerGRPOConfig

    store, root, _, videos = mined
    solver = TransformersEngine(load_model(tiny_qwen_dir(), device="cpu"), batch_size=16)
    wvs = []
    for video_id in list(videos)[:2]:
        ev = load_video_evidence(store, video_id, root / "cache")
        wvs.append(WriterVideo(ev, VideoInput(ev.frames[::4], ev.timestamps[::4])))
    writer = load_model(tiny_qwen_dir(), device="cpu")
    config = QuestionerGRPOConfig(
        steps=1,
        spans_per_step=2,
        group_size=2,
        max_new_tokens=24,
        lr=1e-3,
        verify=VerifyConfig(n_full=2, n_probe=1),
    )
    trainer = QuestionerTrainer(writer, solver, config)
    before = {n: p.detach().clone() for n, p in trainer.lm.model.named_parameters() if p.requires_grad}
    report = trainer.train(wvs)
    (step,) = report.steps
    assert step.writes == 4 and step.parsed == 0 and step.mean_r_q == config.invalid_reward
    assert step.groups_kept == 0 and step.anchored and step.loss > 0
    after = dict(trainer.lm.model.named_parameters())
    assert any(not torch.equal(before[n], after[n]) for n in before)


def test_write_rewards_score_invalid_writes_and_subtract_repetition():
    from types import SimpleNamespace

    from videozero.questioner.training import write_rewards

    v = SimpleNamespace(r_learn=0.5, r_dep=0.25, r_evid=0.5)
    assert write_rewards(["w0", "w1", "w2"], {1: v, 2: v}, {2: 0.5}, -1.0) == [-1.0, 1.25, 0.75]


def test_family_measurements_feed_the_curriculum(mined):
    from videozero.curriculum import CurriculumScheduler
    from videozero.stages.curriculum import family_measurements

    store, _, _, _ = mined
    with store.session() as s:
        round_id = s.scalar(select(Question.round_id).where(Question.verification.is_not(None)).limit(1))
    if round_id is None:
        pytest.skip(
            "needs the round of test_question_round_with_the_tiny_model_stores_everything_and_resumes"
        )
    measured = family_measurements(store, round_id)
    assert measured and all(0 <= m.learnability <= 0.5 and m.n > 0 for m in measured.values())
    sched = CurriculumScheduler()
    state = sched.update(sched.initial(list(FAMILIES)), measured)
    assert abs(sum(state.weights().values()) - 1) < 1e-6


def test_fixed_heldout_videos_stay_held_out_and_warmup_targets_come_from_training_videos(mined):
    from store.runs import training_video_ids as training_videos
    from videozero.questioner.round_config import QuestionerConfig
    from videozero.questioner.supervision import template_targets
    from videozero.solver.warmup import supervised_targets

    store, root, _, videos = mined
    ids = list(videos)
    run_id = claim_run(store, "fixed-heldout", {})
    splits = attach_videos(store, run_id, ids[:2], heldout=[ids[2]])
    assert splits == {ids[0]: "train", ids[1]: "train", ids[2]: "heldout"}
    # attaching again (a resumed run) moves nothing
    assert attach_videos(store, run_id, ids, heldout=[ids[0]]) == splits
    train = training_videos(store, run_id)
    assert train == ids[:2]
    config = QuestionerConfig(solver_max_frames=8)
    targets = template_targets(
        evidence_loader(store, root / "cache"), train, config, per_video=24, cache_dir=root / "cache"
    )
    assert len(targets) >= 12 and {t.family for t in targets} <= set(FAMILIES)
    assert len({t.family for t in targets}) >= 4
    assert all(t.answer and t.writer == "template" and t.request.video is not None for t in targets)
    assert all(len(t.request.video) <= 8 for t in targets)  # the solver's frame budget
    shown = [
        (
            t.request.question,
            t.answer,
            t.evidence,
            tuple(img.tobytes() for _, img in t.request.images),
            t.request.video.frames.tobytes(),
        )
        for t in targets
    ]
    # distinct questions: the same words may come with other images, or with another video (two
    # generated clips with the same cuts ask the same counting question)
    assert len(set(shown)) == len(shown)
    # each template target thinks its constructed hops in times of the frames the solver is shown
    for t in targets:
        stamps = {f"{x:.1f}" for x in t.request.video.timestamps}
        times = re.findall(r"\d+\.\d", t.rationale)
        assert all(x in stamps for x in times), (t.family, t.rationale)
        if t.family == "counting":
            assert t.rationale == ""  # its evidence spans already mark each cut
        elif t.family == "grounding":
            assert t.rationale.startswith("Query ") and len(times) == 1
            inside = [x for x in t.request.video.timestamps if t.evidence[0][0] <= x <= t.evidence[0][1]]
            if inside:  # the query's moment is a shown frame of the answer's span when one is there
                assert float(times[0]) in {round(x, 1) for x in inside}, (t.rationale, t.evidence)
        elif t.family == "ordering":
            assert len(times) == len(t.answer.split(","))
    targets_text = supervised_targets(targets, rationale=True)
    assert all(f"<think>{t.rationale}</think>" in text for t, text in zip(targets, targets_text, strict=True))
    assert all("<think></think>" in text for text in supervised_targets(targets))  # the default: none


def test_validation_and_warmup_videos_get_their_own_splits_and_fixed_questions(mined):
    from store.runs import training_video_ids as training_videos
    from videozero.questioner.round_config import QuestionerConfig
    from videozero.stages.heldout import ensure_fixed_questions, ensure_heldout

    store, root, _, videos = mined
    a, b, c = list(videos)
    run_id = claim_run(store, "splits", {})
    # a video named held out and for validation is held out: nothing held out is ever chosen on
    splits = attach_videos(store, run_id, [a], heldout=[b], fixed={b: "validation", c: "warmup"})
    assert splits == {a: "train", b: "heldout", c: "warmup"}
    assert training_videos(store, run_id) == [a, c]  # the warm-up learns from train and warm-up videos

    run2 = claim_run(store, "splits-validation", {})
    attach_videos(store, run2, [a], heldout=[b], fixed={c: "validation"})
    assert training_videos(store, run2) == [a]  # never from the validation videos
    config = QuestionerConfig(solver_max_frames=8, heldout_per_video=12)
    held = ensure_heldout(store, run2, config, root / "cache")
    with store.session() as s:
        rows = s.execute(
            select(Question.split, Question.video_id, Question.status).where(Question.run_id == run2)
        ).all()
    by_split = {split: {v for sp, v, _ in rows if sp == split} for split in ("heldout", "validation")}
    assert by_split == {"heldout": {b}, "validation": {c}}
    assert held == sum(sp == "heldout" for sp, _, _ in rows) and all(st == "accepted" for *_, st in rows)
    # made once: asking again adds nothing
    assert ensure_fixed_questions(store, run2, config, "validation", root / "cache") == sum(
        sp == "validation" for sp, _, _ in rows
    )
    with store.session() as s:
        assert s.scalar(select(func.count(Question.id)).where(Question.run_id == run2)) == len(rows)
    with pytest.raises(ValueError, match="not 'train'"):
        ensure_fixed_questions(store, run2, config, "train")


def test_questioner_warmup_targets_parse_as_writes_about_their_evidence(mined):
    from videozero.questioner.warmup import WRITTEN_FAMILIES, writer_targets
    from videozero.questioner.writer import parse_written
    from videozero.video.decode import SamplingConfig

    store, root, _, videos = mined
    pairs = writer_targets(
        evidence_loader(store, root / "cache"),
        list(videos),
        SamplingConfig(fps=2.0, max_frames=8),
        16,
        0,
        root / "cache",
    )
    assert len(pairs) >= 6
    per_video = [(id(inp.request.video), t) for inp, t in pairs]
    assert len(set(per_video)) == len(per_video)  # no write twice on one video
    kinds = {"counting": 0, "when": 0}
    for inp, target in pairs:
        c = parse_written(target, inp.duration, inp.spans)
        assert c.reject_reason is None, (target, c.reject_reason)
        # the write is about the evidence its request names (written to 0.1 s)
        assert np.allclose(c.evidence, inp.spans, atol=0.051), (c.evidence, inp.spans)
        assert len(inp.request.video) <= 8  # the solver's frame budget
        chosen = c.options["ABCDE".index(c.answer)]
        if c.text.startswith("How many times"):
            kinds["counting"] += 1
            window = re.findall(r"[\d.]+", c.text)
            assert chosen.isdigit() and window, c  # the correct option is the count itself
        else:
            kinds["when"] += 1
            assert "appear" in c.text or "seen" in c.text
    assert all(kinds.values()), kinds  # both written families and the label writes
    assert set(WRITTEN_FAMILIES) == {"semantic_grounding", "counting"}


def test_every_family_supports_the_generated_clips(mined):
    from videozero.questioner.families import family_support

    store, root, _, videos = mined
    for video_id in videos:
        support = family_support(load_video_evidence(store, video_id, root / "cache"))
        assert set(support) == set(FAMILIES)
        assert [f for f, why in support.items() if why] == [], support


def test_a_long_video_without_questions_is_reported_with_each_familys_reason(mined, tmp_path):
    """A static 12 s shot with nothing happening carries no question; the run says why, per family,
    while a video with questions is not reported."""
    from videozero.questioner.families import family_support
    from videozero.questioner.round_config import QuestionerConfig
    from videozero.reports.coverage import MIN_REPORTED_S, coverage_table
    from videozero.stages.heldout import ensure_heldout
    from videozero.stages.mine import mine_videos
    from videozero.stages.report import video_coverage

    store, root, _, videos = mined
    still = tmp_path / "still.mp4"
    write_clip(ClipSpec(shots=[ShotSpec(duration_s=12.0, pattern="flat")], events=[], seed=5), still)
    [result] = mine_videos(store, [still], cache_dir=root / "cache").results
    assert result.status == "mined" and result.video_id is not None
    ev = load_video_evidence(store, result.video_id, root / "cache")
    assert ev.duration >= MIN_REPORTED_S and ev.cuts == []
    support = family_support(ev)
    assert support["counting"] == "one shot: there are no cuts to count"
    assert all(support.values()), support  # nothing to anchor any family to

    run_id = claim_run(store, "coverage", {})
    with_questions = next(iter(videos))
    attach_videos(store, run_id, [with_questions], heldout=[result.video_id])
    ensure_heldout(store, run_id, QuestionerConfig(heldout_per_video=12, solver_max_frames=8), root / "cache")
    rows = {c.path: c for c in video_coverage(store, run_id, FAMILIES, root / "cache")}
    assert rows[str(still)].questions == 0 and rows[str(still)].split == "heldout"
    assert rows[str(still)].reason == "; ".join(f"{f}: {why}" for f, why in support.items())
    assert rows[videos[with_questions]].reason == ""  # a training video before any round: not yet asked
    table = coverage_table(list(rows.values()))
    assert table is not None and table.row_count == 1
    assert coverage_table([rows[videos[with_questions]]]) is None


def _frame_index(frames: np.ndarray, view: np.ndarray) -> int:
    """Which frame of `frames` the view `view` is (by its address: generated shots repeat frames)."""
    offset = view.__array_interface__["data"][0] - frames.__array_interface__["data"][0]
    return offset // frames[0].nbytes


def test_matching_drills_are_true_to_the_frames_and_train_with_the_warmup_settings(mined, tmp_path):
    """Each drill's answer is the option shown near the Query, and it is the option most like the Query
    by the frozen frame embedding; letters are spread; a static shot gives no drill; steps run."""
    from collections import Counter

    from videozero.models.loader import load_model
    from videozero.solver.matching import MATCH_QUESTION, matching_drills
    from videozero.solver.warmup import matching_steps
    from videozero.solver.warmup_config import MatchingConfig, WarmupConfig

    store, root, _, videos = mined
    evidence = [load_video_evidence(store, v, root / "cache") for v in videos]
    config = MatchingConfig(options=3)
    drills = matching_drills(evidence, 60, config, seed=3)
    assert len(drills) == 60
    frames = {id(ev): ev for ev in evidence}
    letters = Counter()
    for request, target in drills:
        assert request.question == MATCH_QUESTION and request.video is None
        (_, query), *options = request.images
        assert [label for label, _ in options] == ["Option A", "Option B", "Option C"]
        answer = re.fullmatch(r"<answer>([A-C])</answer>", target).group(1)
        letters[answer] += 1
        ev = next(e for e in frames.values() if np.shares_memory(query, e.frames))
        i, *picked = (_frame_index(ev.frames, img) for img in (query, *(img for _, img in options)))
        right = picked["ABC".index(answer)]
        assert abs(ev.timestamps[right] - ev.timestamps[i]) <= config.near_s + 1e-6
        sims = [float(ev.pooled[k] @ ev.pooled[i]) for k in picked]
        assert max(range(3), key=sims.__getitem__) == "ABC".index(answer)
        assert all(abs(ev.timestamps[k] - ev.timestamps[i]) >= config.far_s for k in picked if k != right)
    assert min(letters.values()) >= 10, letters

    still = tmp_path / "still.mp4"
    write_clip(ClipSpec(shots=[ShotSpec(duration_s=6.0, pattern="flat")], events=[], seed=7), still)
    from videozero.stages.mine import mine_videos

    [result] = mine_videos(store, [still], cache_dir=root / "cache").results
    static = load_video_evidence(store, result.video_id, root / "cache")
    assert matching_drills([static], 10, config) == []

    lm = load_model(tiny_qwen_dir("qwen3_vl"))
    w = WarmupConfig(lora=None, matching=MatchingConfig(steps=3, batch_size=4, micro_batch_size=2, lr=1e-3))
    report = matching_steps(lm, drills[:12], w)
    assert report.steps == 3 and report.examples == 12 and np.isfinite(report.last_loss)


def test_heldout_scores_count_answers_that_think_the_constructed_rationale():
    """The first hops, measured: the share of answers whose think says the question's rationale, per
    family, over the questions that have one (counting has none; its questions do not dilute it)."""
    from videozero.solver.heldout import heldout_scores
    from videozero.solver.rollout import SolverQuestion

    def question(family: str, rationale: str) -> SolverQuestion:
        return SolverQuestion(
            Request(family), "option", "A", ((2.0, 4.0),), 10.0, family=family, rationale=rationale
        )

    questions = [
        question("grounding", "Query 2.5"),
        question("grounding", "Query 6.0"),
        question("counting", ""),
    ]
    said = iter(["Query  2.5", "Query 7.5", "whatever"])
    engine = ScriptedSolver(lambda r, k: _answer("A").replace("<think>", f"<think>{next(said)}"))
    scores = heldout_scores(engine, questions)
    assert scores.families["grounding"]["rationale"] == 0.5  # whitespace aside, one of two said it
    assert "rationale" not in scores.families["counting"]
    assert scores.rationale == 0.5 and scores.accuracy == 1.0


def _media_references(row: dict, shape: str) -> tuple[int, list[str]]:
    """(placeholders or image parts the prompt shows, image files the row names) of an exported row."""
    if shape == "verl":
        return row["prompt"][0]["content"].count("<image>"), [i["image"] for i in row["images"]]
    if shape == "easyr1":
        return row["problem"].count("<image>"), row["images"]
    parts = [p for p in row["prompt"][0]["content"] if p["type"] == "image"]
    files = [p["image"] if shape == "openrlhf" else p["path"] for p in parts]
    if shape == "openrlhf":
        assert files == row["images"]
    return len(parts), files


@pytest.mark.parametrize("shape", ["verl", "openrlhf", "easyr1", "trl"])
def test_exports_carry_every_query_image_their_prompts_show(mined, tmp_path, shape):
    """Questions of every family from real mined clips: each `<image>` (or image part) of an exported
    prompt is a PNG file beside the export, in the row, showing the frame the question names."""
    from PIL import Image

    from store.queries import QuestionFilter, list_questions
    from store.runs import ensure_round
    from videozero.export import media_folder, write_export
    from videozero.questioner.round_config import QuestionerConfig
    from videozero.stages.question import propose_round
    from videozero.video.cache import VideoCache, load_clip
    from videozero.video.decode import MINING_SAMPLING
    from videozero.video.query_images import query_frames

    store, root, _, videos = mined
    name = f"export-{shape}"
    run_id = claim_run(store, name, {})
    attach_videos(store, run_id, list(videos)[:2], heldout=[list(videos)[2]])
    config = QuestionerConfig(per_video=12)
    propose_round(store, run_id, ensure_round(store, run_id, 0), config, cache_dir=root / "cache")
    with store.session() as s:
        rows = list_questions(s, QuestionFilter(run=name, status="candidate"), limit=None)
    assert {"grounding", "ordering", "what_next"} <= {r["family"] for r in rows}
    out = tmp_path / f"{shape}.jsonl"
    assert write_export(reversed(rows), out, shape, cache=VideoCache(root / "cache")) == len(rows)
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    folder = media_folder(out).resolve()
    shown = 0
    for row, ex in zip(reversed(rows), exported, strict=True):
        n, files = _media_references(ex, shape)
        expected = query_frames(load_clip(row["video"], MINING_SAMPLING).timestamps, row["spec"] or {})
        assert n == len(files) == len(expected), (row["family"], n, files)
        for (_label, index), f in zip(expected, files, strict=True):
            path = Path(f)
            assert path.is_file() and path.is_relative_to(folder)
            assert f"frame_{index:04d}_" in path.name
            with Image.open(path) as image:
                assert image.size[1] > 0 and image.mode == "RGB"
        shown += n
        if shape in ("verl", "easyr1"):  # the labels precede their images, the video follows them
            text = ex["prompt"][0]["content"] if shape == "verl" else ex["problem"]
            assert all(f"{label}: <image>" in text for label, _ in expected)
            assert text.count("<video>") == 1 and text.index("<video>") > text.rfind("<image>")
        if shape == "verl":
            assert ex["videos"] == [{"video": row["video"], "fps": 2.0, "max_frames": 32}]
    assert shown > 0
    # files are written once per frame, shared by the questions that show it
    assert len(list(folder.rglob("*.png"))) == len(
        {f for ex in exported for f in _media_references(ex, shape)[1]}
    )


@pytest.mark.parametrize("backend", ["verl", "openrlhf"])
def test_a_round_handed_to_an_external_backend_writes_its_data_and_command(mined, tmp_path, backend):
    """`solver.backend: verl | openrlhf`: the round's accepted questions exported in the backend's shape
    with their media and its command written; without the backend installed the stage stops with the
    folder in one sentence; a checkpoint the backend saved there is read back."""
    import pyarrow.parquet as pq
    from sqlalchemy import update

    from store.runs import ensure_round
    from videozero.errors import VideozeroError
    from videozero.questioner.round_config import QuestionerConfig
    from videozero.run_config import RunConfig
    from videozero.stages.external import external_round
    from videozero.stages.question import propose_round
    from videozero.stages.solver import solver_settings

    store, root, _, videos = mined
    name = f"ext-{backend}"
    run_id = claim_run(store, name, {})
    attach_videos(store, run_id, list(videos)[:2], heldout=[list(videos)[2]])
    round_id = ensure_round(store, run_id, 0)
    propose_round(store, run_id, round_id, QuestionerConfig(per_video=6), cache_dir=root / "cache")
    with store.write() as s:
        s.execute(
            update(Question)
            .where(Question.round_id == round_id, Question.status == "candidate")
            .values(status="accepted")
        )
        accepted = s.scalar(
            select(func.count(Question.id)).where(
                Question.round_id == round_id, Question.status == "accepted"
            )
        )
    config = RunConfig(
        run_name=name, workdir=str(tmp_path), solver={"backend": backend, "external": {"dry_run": True}}
    )
    gcfg = solver_settings(config, 0)
    ext = external_round(store, config, name, 0, "/models/qwen-vl", gcfg)
    assert ext.checkpoint is None and ext.questions == accepted > 0
    script = (ext.folder / "command.sh").read_text()
    if backend == "verl":
        rows = pq.read_table(ext.folder / "data" / "train.parquet").to_pylist()
        assert "verl.trainer.main_ppo" in script and "actor_rollout_ref.model.path=/models/qwen-vl" in script
        assert f"data.train_files={ext.folder / 'data' / 'train.parquet'}" in script
        assert all(Path(i["image"]).is_file() for r in rows for i in r["images"])
    else:
        rows = [json.loads(x) for x in (ext.folder / "data" / "train.jsonl").read_text().splitlines()]
        assert "openrlhf.cli.train_ppo_ray" in script and all(
            Path(p).is_file() for r in rows for p in r["images"]
        )
    assert len(rows) == accepted and "VIDEOZERO_REWARD_WEIGHTS" in script
    if backend == "verl":  # the loop's solver stage hands the round over and records the dry run
        from store.checkpoints import checkpoint_row
        from store.tables import Round
        from videozero.stages.solver import solver_stage

        checkpoint_row(store, "/models/qwen-vl", "base", run_id=run_id)
        staged = config.model_copy(update={"db": store.url.render_as_string(hide_password=False)})
        out = solver_stage(staged, run_id, 0)
        assert out["backend"] == "verl" and out["status"] == "skipped" and out["questions"] == accepted
        with store.session() as s:
            record = s.get(Round, round_id).stages["solver"]
        assert record["status"] == "skipped" and record["reason"].startswith("dry run")
    live = config.model_copy(
        update={
            "solver": config.solver.model_copy(
                update={"external": gcfg.external.model_copy(update={"dry_run": False})}
            )
        }
    )
    with pytest.raises(
        VideozeroError, match=f"{backend} is not installed here: round 0's data and command are in"
    ):
        external_round(store, live, name, 0, "/models/qwen-vl", solver_settings(live, 0))
    # the backend ran elsewhere and left its checkpoint in the folder: the same round reads it back
    saved = ext.folder / "output" / ("global_step_4/actor/huggingface" if backend == "verl" else "final")
    saved.mkdir(parents=True)
    (saved / "config.json").write_text("{}")
    (saved / "model.safetensors").write_bytes(b"")
    assert (
        external_round(store, live, name, 0, "/models/qwen-vl", solver_settings(live, 0)).checkpoint == saved
    )
