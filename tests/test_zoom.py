"""Temporal zoom-in: the zoomed view, the zoom tool's protocol on a scripted engine (calls, tool turns,
masks, turn limit, hostile calls), coarse-to-fine inference, the zoom-in reward and a GRPO step with the
tool on a real tiny model, and the warm-up's tool targets."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from tests.model_builds import real_clip_path, tiny_qwen_dir
from videozero.answer_format import parse_answer, parse_zoom_call, render_answer, render_zoom_call
from videozero.models.engines.base import GenerationEngine, Sample, SamplingParams
from videozero.models.request import Request
from videozero.rewards import RewardWeights
from videozero.solver.rollout import RolloutConfig, SolverQuestion, attempt_rows, rollout_questions
from videozero.solver.zoom_tool import LAST_TURN, TOOL_INSTRUCTION, run_tool, tool_request, warmup_rows
from videozero.video.inputs import VideoInput
from videozero.video.zoom import dense_source, usable_spans, zoom_view
from videozero.zoom_config import ZoomEvalSettings, ZoomRewardSettings, ZoomToolSettings

ANSWER = "<think></think><evidence>[2.0, 4.0]</evidence><answer>B</answer>"


def call(body: str) -> str:
    return f"<think>look</think><video_zoom>{body}</video_zoom>"


def source(n: int = 20, fps: float = 2.0) -> VideoInput:
    """n frames at `fps`, frame i filled with the value i (so a shown frame says which it is)."""
    frames = np.stack([np.full((4, 4, 3), i, np.uint8) for i in range(n)])
    return VideoInput(frames, np.arange(n) / fps)


class ScriptedEngine(GenerationEngine):
    """Answers by a script of (request, sample index) -> text; token ids from `tokenizer` when given (so
    a real model can train on them), else one id per character. Records every call."""

    def __init__(self, script: Callable[[Request, int], str], tokenizer=None) -> None:
        self.script, self.tokenizer = script, tokenizer
        self.calls: list[tuple[list[Request], SamplingParams]] = []

    def generate(self, requests: Sequence[Request], params: SamplingParams) -> list[list[Sample]]:
        self.calls.append((list(requests), params))
        out = []
        for request in requests:
            samples = []
            for k in range(params.n):
                text = self.script(request, k)
                ids = (
                    self.tokenizer(text, add_special_tokens=False)["input_ids"]
                    if self.tokenizer is not None
                    else [ord(c) % 256 for c in text]
                )
                logprobs = [-0.1] * len(ids) if params.logprobs else None
                samples.append(Sample(text, ids, logprobs, "stop"))
            out.append(samples)
        return out


def overview() -> VideoInput:
    src = source()
    return src.drop(np.arange(len(src)) % 5 != 0)  # 4 frames: 0, 2.5, 5, 7.5 s


def question(**kw) -> SolverQuestion:
    base = dict(
        request=Request("Which? A. x B. y", overview()),
        kind="option",
        answer="B",
        evidence=((2.0, 4.0),),
        duration=10.0,
        zoom_source=source(),
    )
    return SolverQuestion(**(base | kw))


# -- the zoomed view --------------------------------------------------------------------------------------


def test_zoom_view_takes_frames_inside_spans_at_their_true_times_within_the_budget() -> None:
    src = source()
    view = zoom_view(src, [(2.0, 4.0), (7.0, 8.0)], 10.0, max_frames=16)
    assert view.times == [2.0, 2.5, 3.0, 3.5, 4.0, 7.0, 7.5, 8.0] and not view.fallback
    assert [int(f[0, 0, 0]) for f in view.video.frames] == [4, 5, 6, 7, 8, 14, 15, 16]  # the true frames
    capped = zoom_view(src, [(0.0, 10.0)], 10.0, max_frames=5)
    assert len(capped.video) == 5 and capped.times[0] == 0.0 and capped.times[-1] == 9.5
    slower = zoom_view(src, [(2.0, 4.0)], 10.0, max_frames=16, fps=1.0)
    assert slower.times == [2.0, 3.0, 4.0]
    # out of the video: clamped; reversed: ordered; no length or not finite: dropped
    assert usable_spans([(8.0, 30.0), (4.0, 2.0), (5.0, 5.0), (float("inf"), 1.0)], 10.0) == (
        (2.0, 4.0),
        (8.0, 10.0),
    )
    for spans in ([], [(5.0, 5.0)], [(20.0, 30.0)], [(float("nan"), 2.0)]):
        fallback = zoom_view(src, spans, 10.0, max_frames=4)
        assert fallback.fallback and len(fallback.video) == 4 and fallback.times[0] == 0.0


def test_dense_source_decodes_through_the_frame_cache(tmp_path) -> None:
    from videozero.video.cache import VideoCache

    cache = VideoCache(tmp_path / "cache")
    first = dense_source(real_clip_path(), 4.0, 64, cache)
    again = dense_source(real_clip_path(), 4.0, 64, cache)
    assert len(list((tmp_path / "cache").rglob("frames.npz"))) == 1
    assert np.array_equal(first.timestamps, again.timestamps) and np.array_equal(first.frames, again.frames)
    gaps = np.diff(first.timestamps)
    assert len(first) > 8 and gaps.min() > 0 and np.median(gaps) == pytest.approx(0.25, abs=0.05)
    view = zoom_view(first, [(1.0, 2.0)], float(first.timestamps[-1]), max_frames=16)
    assert all(1.0 - 1e-6 <= t <= 2.0 + 1e-6 for t in view.times) and len(view.times) >= 4


# -- the call parser and the tool protocol --------------------------------------------------------------

HOSTILE_CALLS = [
    call("[2, 4"),  # not JSON
    call(""),
    call("null"),
    call('"segment"'),
    call("[2, 4]"),  # JSON, but not an object
    call('{"segment": "2 to 4"}'),
    call('{"segment": [2]}'),
    call('{"segment": [2, 4, 6]}'),
    call('{"segment": ["a", "b"]}'),
    call('{"segment": [true, false]}'),
    call('{"segment": [4, 2]}'),  # reversed
    call('{"segment": [3, 3]}'),  # no length
    call('{"segment": [-5, 2]}'),  # before the video
    call('{"segment": [2, 40]}'),  # after its end
    call('{"segment": [2, 1e308]}'),
    call('{"segment": [NaN, 2]}'),
    call('{"segment": [2, Infinity]}'),
    call('{"segment": [2, 4], "fps": 0}'),
    call('{"segment": [2, 4], "fps": -3}'),
    call('{"segment": [2, 4], "fps": "fast"}'),
    call('{"segment": [2, 4], "fps": NaN}'),
    call('{"segment": [0, 10], "fps": 30}'),  # too many frames
    call("[" * 5000 + "]" * 5000),  # deeply nested
    call('{"segment": [2, 4]}' + "x" * 20_000),
    call("\x00\x1b[31m{}"),
]


@pytest.mark.parametrize("text", HOSTILE_CALLS)
def test_hostile_calls_get_an_error_sentence_never_an_exception(text: str) -> None:
    found = parse_zoom_call(text, 10.0, max_frames=8, max_fps=4.0)
    assert found is not None and not found.ok and found.segment is None
    assert 0 < len(found.error) < 120 and "\n" not in found.error


def test_good_calls_and_turns_without_a_call() -> None:
    assert parse_zoom_call(call('{"segment": [2, 4], "fps": 2}'), 10.0, 8, 4.0).segment == (2.0, 4.0)
    assert parse_zoom_call(call('{"segment": [2, 4]}'), 10.0, 16, 4.0).fps == 4.0  # the highest rate
    assert parse_zoom_call(call('{"segment": [2, 4], "fps": 100}'), 10.0, 16, 4.0).fps == 4.0
    for text in (ANSWER, "", None, 42, "<video_zoom>unclosed"):
        assert parse_zoom_call(text, 10.0, 8, 4.0) is None


def test_tool_protocol_calls_tool_turns_and_rows() -> None:
    def script(request: Request, k: int) -> str:
        return call('{"segment": [2, 4], "fps": 2}') if not request.turns else ANSWER

    engine = ScriptedEngine(script)
    q = question()
    settings = ZoomToolSettings(max_turns=3, max_frames=8)
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=40, seed=3)
    [group] = run_tool(engine, [tool_request(q.request)], [10.0], [lambda: q.zoom_source], params, settings)
    assert len(group) == 2
    first_call, second_call = engine.calls
    assert (
        first_call[1].n == 2 and "</video_zoom>" in first_call[1].stop and "</answer>" in first_call[1].stop
    )
    assert second_call[1].n == 1 and len(second_call[0]) == 2  # each trajectory goes on with one sample
    assert TOOL_INSTRUCTION in first_call[0][0].system
    for t in group:
        assert [s.text for s in t.segments] == [script(Request(""), 0), ANSWER] and not t.hit_limit
        assert t.calls == [
            {"segment": [2.0, 4.0], "fps": 2.0, "frames": [2.0, 2.5, 3.0, 3.5, 4.0], "fallback": False}
        ]
        [turn] = t.replies
        assert turn.said == t.segments[0].text and "Frames of 2.0 to 4.0 s" in turn.reply
        assert LAST_TURN not in turn.reply  # turn 2 of 3: told not to zoom only before the last
        assert list(turn.video.timestamps) == [2.0, 2.5, 3.0, 3.5, 4.0]
        assert [int(f[0, 0, 0]) for f in turn.video.frames] == [4, 5, 6, 7, 8]
        # one training row per model turn; the tool's turn lies in the second row's prompt only
        (p0, c0), (p1, c1) = t.rows()
        assert p0.turns == () and p1.turns == (turn,)
        assert c0 == t.segments[0].token_ids and c1 == t.segments[1].token_ids
        record = t.record()
        assert record[0]["call"]["frames"] == [2.0, 2.5, 3.0, 3.5, 4.0] and "call" not in record[1]


def test_tool_turn_limit_and_the_last_turn_is_told_not_to_zoom() -> None:
    engine = ScriptedEngine(lambda request, k: call('{"segment": [1, 2]}'))  # zooms forever
    q = question()
    settings = ZoomToolSettings(max_turns=3, max_frames=8)
    [[t]] = run_tool(
        engine, [tool_request(q.request)], [10.0], [lambda: q.zoom_source], SamplingParams(n=1), settings
    )
    assert len(t.segments) == 3 and t.hit_limit and len(engine.calls) == 3
    assert LAST_TURN not in t.replies[0].reply and LAST_TURN in t.replies[1].reply
    assert t.calls[-1] == {"error": "no turns left (3 at most)"}
    assert not parse_answer(t.final.text, 10.0).format_ok  # it never answered


def test_hostile_calls_in_rollouts_are_penalised_and_recorded() -> None:
    def script(request: Request, k: int) -> str:
        return HOSTILE_CALLS[k] if not request.turns else ANSWER

    n = len(HOSTILE_CALLS)
    tool = ZoomToolSettings(max_turns=2, max_frames=8, penalty=0.25)
    config = RolloutConfig(n=n, weights=RewardWeights())
    [result] = rollout_questions(ScriptedEngine(script), [question()], config, tool=tool)
    plain = rollout_questions(ScriptedEngine(lambda r, k: ANSWER), [question()], RolloutConfig(n=1))[0]
    for s in result.samples:
        assert s.trajectory.errors == 1 and s.trajectory.replies[0].video is None
        assert s.trajectory.replies[0].reply.startswith("Zoom refused: ")
        assert s.reward.total == pytest.approx(plain.samples[0].reward.total - 0.25)
    rows = attempt_rows(result, question_id=1, checkpoint_id=1, mode="zoom_tool")
    assert all(r["turns"][0]["call"]["error"] for r in rows) and rows[0]["turns"][1]["said"] == ANSWER


def test_blind_questions_cannot_zoom() -> None:
    q = question(request=Request("Which?"), zoom_source=None)
    engine = ScriptedEngine(lambda r, k: call('{"segment": [2, 4]}') if not r.turns else ANSWER)
    [result] = rollout_questions(engine, [q], RolloutConfig(n=1), tool=ZoomToolSettings())
    assert "without the video" in result.samples[0].trajectory.calls[0]["error"]


def test_tool_masks_on_a_real_tokenizer_the_tool_turn_is_prompt_only() -> None:
    from videozero.models.loader import load_model
    from videozero.models.prompt import VIDEO_PAD, build_batch

    lm = load_model(tiny_qwen_dir())
    engine = ScriptedEngine(
        lambda r, k: call('{"segment": [2, 4], "fps": 2}') if not r.turns else ANSWER, lm.tokenizer
    )
    q = question()
    [[t]] = run_tool(
        engine,
        [tool_request(q.request)],
        [10.0],
        [lambda: q.zoom_source],
        SamplingParams(n=1),
        ZoomToolSettings(),
    )
    requests, completions = zip(*t.rows(), strict=True)
    batch = build_batch(lm, list(requests), list(completions))
    tok = lm.tokenizer
    for row, segment in enumerate(t.segments):
        ids = batch.input_ids[row]
        trained = ids[batch.completion_mask[row]].tolist()
        assert trained == segment.token_ids  # exactly the model's own turn is trained on
        prompt = tok.decode(ids[~batch.completion_mask[row] & (batch.inputs["attention_mask"][row] > 0)])
        assert ("Frames of 2.0 to 4.0 s" in prompt) == (row == 1)
        assert "Frames of" not in tok.decode(trained)
    video_id = tok.convert_tokens_to_ids(VIDEO_PAD)
    assert int((batch.input_ids[1] == video_id).sum()) > int((batch.input_ids[0] == video_id).sum())
    assert batch.inputs["video_grid_thw"].shape[0] == 3  # the overview twice, the zoom once


# -- coarse-to-fine ----------------------------------------------------------------------------------------


def test_coarse_to_fine_zooms_only_when_unsure_and_keeps_the_more_confident() -> None:
    from videozero.evaluation.zoom import coarse_to_fine

    def script(request: Request, k: int) -> str:
        if request.question.startswith("sure"):
            return ANSWER
        if len(request.video) > 4:  # the zoomed view: all agree on C
            return "<think></think><evidence>[2.5, 3.5]</evidence><answer>C</answer>"
        return ANSWER if k % 2 else ANSWER.replace(">B<", ">A<")  # split 50/50

    engine = ScriptedEngine(script)
    settings = ZoomEvalSettings(
        mode="coarse_to_fine", confidence="agreement", samples=4, threshold=0.8, max_frames=8
    )
    sure, unsure = Request("sure?", overview()), Request("unsure?", overview())
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=40)
    found = coarse_to_fine(
        engine, [sure, unsure], [10.0, 10.0], ["option"] * 2, [source] * 2, settings, greedy
    )
    (text_sure, rec_sure), (text_unsure, rec_unsure) = found
    assert text_sure == ANSWER and not rec_sure["zoomed"] and rec_sure["coarse"]["confidence"] == 1.0
    assert rec_unsure["zoomed"] and rec_unsure["coarse"]["confidence"] == 0.5 and rec_unsure["kept"] == "zoom"
    assert rec_unsure["zoom"]["frames"] == [2.0, 2.5, 3.0, 3.5, 4.0] and rec_unsure["zoom"]["answer"] == "C"
    assert parse_answer(text_unsure).answer == "C"
    zoomed = engine.calls[1][0][0]
    assert list(zoomed.video.timestamps) == [2.0, 2.5, 3.0, 3.5, 4.0]  # the coarse answer's span, densely


def test_coarse_to_fine_by_answer_probability_on_a_real_model() -> None:
    from videozero.evaluation.zoom import answer_probability, zoom_answers
    from videozero.models.engines.transformers_engine import TransformersEngine
    from videozero.models.loader import load_model

    lm = load_model(tiny_qwen_dir())
    engine = TransformersEngine(lm)
    settings = ZoomEvalSettings(mode="coarse_to_fine", threshold=1.0, max_frames=4)  # always unsure
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=12)
    found = zoom_answers(
        engine, [Request("Which?", overview())], [10.0], ["option"], [source], settings, greedy
    )
    [(_, record)] = found
    assert record["zoomed"] and 0.0 <= record["coarse"]["confidence"] <= 1.0
    assert len(record["zoom"]["frames"]) <= 4
    tokens = lm.tokenizer("<answer>B</answer>", add_special_tokens=False)["input_ids"]
    sample = Sample("<answer>B</answer>", tokens, [-0.5] * len(tokens), "stop")
    assert answer_probability(lm.tokenizer, sample) == pytest.approx(np.exp(-0.5 * len(tokens)))


# -- the zoom-in reward and GRPO with the tool -------------------------------------------------------------


def test_zoom_in_reward_is_the_accuracy_from_the_zoomed_view() -> None:
    from videozero.solver.zoom_reward import add_zoom_rewards, zoom_accuracies

    def rollout(request: Request, k: int) -> str:  # one rollout points at the evidence, one elsewhere
        return ANSWER if k == 0 else ANSWER.replace("[2.0, 4.0]", "[7.0, 9.0]")

    def judge(request: Request, k: int) -> str:  # right only when shown the evidence's frames
        inside = all(2.0 <= t <= 4.0 for t in request.video.timestamps)
        return ANSWER if inside else ANSWER.replace(">B<", ">A<")

    weights = RewardWeights(zoom=0.5)
    [result] = rollout_questions(ScriptedEngine(rollout), [question()], RolloutConfig(n=2, weights=weights))
    before = [s.reward.total for s in result.samples]
    engine = ScriptedEngine(judge)
    accs = zoom_accuracies(engine, [result], ZoomRewardSettings(max_frames=8), weights)
    assert accs == [[1.0, 0.0]] and len(engine.calls[0][0]) == 2
    add_zoom_rewards([result], accs, weights)
    assert [s.reward.zoom for s in result.samples] == [1.0, 0.0]
    assert [s.reward.total for s in result.samples] == pytest.approx([before[0] + 0.5, before[1]])


@pytest.mark.timeout(300)
def test_grpo_step_with_the_tool_and_the_zoom_reward_on_a_real_model() -> None:
    from videozero.models.loader import load_model
    from videozero.solver.grpo import GRPOTrainer
    from videozero.solver.grpo_config import GRPOConfig

    lm = load_model(tiny_qwen_dir())

    def script(request: Request, k: int) -> str:
        if not request.turns and k % 2 == 0:
            return call('{"segment": [1, 5], "fps": 1}')
        return ANSWER if k % 3 else ANSWER.replace(">B<", ">A<")

    config = GRPOConfig(
        steps=1,
        prompts_per_step=2,
        group_size=4,
        max_new_tokens=24,
        lora=None,
        micro_batch_size=8,
        format_floor=0.0,
        weights=RewardWeights(zoom=0.5),
        zoom=ZoomRewardSettings(policy="reference", max_frames=4),
        tool=ZoomToolSettings(max_turns=2, max_frames=8),
    )
    trainer = GRPOTrainer(lm, config)
    assert trainer.zoom_engine is not None and trainer.zoom_engine.lm.model is not lm.model  # the frozen copy
    trainer.engine = ScriptedEngine(script, lm.tokenizer)
    before = {n: p.detach().clone() for n, p in lm.model.named_parameters() if p.requires_grad}
    questions = [question(), question(question_id=2)]
    stats = trainer.step(questions)
    assert stats.tool_calls == pytest.approx(0.5) and stats.zoom is not None and stats.seconds_zoom > 0
    assert stats.groups_kept == 2 and np.isfinite(stats.loss)
    batch_requests, _ = trainer.last_batch
    assert len(batch_requests) == 8 + 4  # 8 rollouts, 4 of them two turns long
    assert sum(1 for r in batch_requests if r.turns) == 4
    changed = [
        n
        for n, p in lm.model.named_parameters()
        if p.requires_grad and not np.allclose(p.detach(), before[n])
    ]
    assert changed


def test_warmup_rows_teach_a_zoom_into_the_evidence_then_the_answer() -> None:
    q = question()
    settings = ZoomToolSettings(max_frames=8, max_fps=4.0)
    (first, call_text), (then, answer) = warmup_rows(
        q.request, q.evidence, "B", 10.0, q.zoom_source, settings, think="hm"
    )
    parsed = parse_zoom_call(call_text, 10.0, settings.max_frames, settings.max_fps)
    assert parsed.ok and parsed.segment == (1.0, 5.0) and call_text.startswith("<think></think>")
    assert first.turns == () and TOOL_INSTRUCTION in first.system
    [turn] = then.turns
    assert turn.said == call_text and turn.video is not None and len(turn.video) <= 8
    assert all(1.0 <= t <= 5.0 for t in turn.video.timestamps)
    assert answer == render_answer(((2.0, 4.0),), "B", "hm")
    assert warmup_rows(q.request, (), "B", 10.0, q.zoom_source, settings) == []
    assert render_zoom_call((1.0, 5.0), 1.75).endswith('"fps": 1.75}</video_zoom>')
    assert '"fps"' not in call_text and parsed.fps == pytest.approx(7 / 4)  # the most the budget allows


def test_warmup_tool_fraction_adds_tool_rows() -> None:
    from videozero.answer_format import render_answer as target
    from videozero.solver.warmup import tool_examples

    questions = [question(question_id=i) for i in range(20)]
    targets = [target(q.evidence, "B") for q in questions]
    requests, texts = tool_examples(questions, targets, 0.5, seed=0)
    assert 10 <= len(requests) <= 30 and len(requests) % 2 == 0
    assert sum(1 for t in texts if "<video_zoom>" in t) == len(texts) // 2


def test_nano_answers_after_a_tool_turn_and_its_shared_prompt_logprobs_are_exact() -> None:
    import torch

    from tests.model_builds import nano_dir, noise_frames
    from videozero.models.engines.transformers_engine import TransformersEngine
    from videozero.models.loader import load_model
    from videozero.models.prompt import build_batch, token_logprobs
    from videozero.models.shared_prompt import grouped_token_logprobs

    lm = load_model(nano_dir())
    dense = VideoInput(noise_frames(20, (64, 64)), np.arange(20) / 2.0)
    q = question(request=Request("Which? A. x B. y", dense.drop(np.arange(20) % 5 != 0)), zoom_source=dense)
    engine = ScriptedEngine(
        lambda r, k: call('{"segment": [2, 4], "fps": 2}') if not r.turns else ANSWER, lm.tokenizer
    )
    params = SamplingParams(n=2)
    groups = run_tool(engine, [tool_request(q.request)], [10.0], [lambda: dense], params, ZoomToolSettings())
    rows = [row for t in groups[0] for row in t.rows()]
    requests, completions = [r for r, _ in rows], [c for _, c in rows]
    assert requests[0] is requests[2]  # the group's first turns share one prompt
    batch = build_batch(lm, requests, completions)
    with torch.no_grad():
        plain = token_logprobs(lm.model, batch)
        shared = grouped_token_logprobs(lm.model, lm, requests, completions, batch)
    assert torch.allclose(plain, shared, atol=1e-4)
    out = TransformersEngine(lm).generate([requests[1]], SamplingParams(n=2, max_new_tokens=4, seed=0))
    assert len(out[0]) == 2


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen2_5_vl"])
def test_vllm_request_of_a_tool_turn_carries_every_video_in_prompt_order(family: str) -> None:
    from videozero.models.engines.vllm_engine import vllm_request
    from videozero.models.loader import load_model_info
    from videozero.models.request import ToolTurn

    lm = load_model_info(tiny_qwen_dir(family))
    first = tool_request(Request("Which?", overview()))
    zoomed = zoom_view(source(), [(2.0, 4.0)], 10.0, max_frames=4)
    request = first.then(ToolTurn(call('{"segment": [2, 4]}'), "Frames of 2.0 to 4.0 s.", zoomed.video))
    built = vllm_request(lm, request)
    prompt = built["prompt"]
    assert prompt.count("<|video_pad|>") == 2 and prompt.index("<|video_pad|>") < prompt.index(
        "Frames of 2.0"
    )
    assert prompt.index("<video_zoom>") < prompt.rindex("<|video_pad|>") and prompt.endswith(
        "<|im_start|>assistant\n"
    )
    videos = built["multi_modal_data"]["video"]
    assert isinstance(videos, list) and len(videos) == 2
    if family == "qwen3_vl":
        assert [m["frames_indices"] for _, m in videos] == [[0, 2500, 5000, 7500], [2000, 2500, 3500, 4000]]
    else:
        assert len(built["mm_processor_kwargs"]["fps"]) == 2


def test_dense_sources_read_each_video_once_and_hold_a_few(tmp_path) -> None:
    from tests.model_builds import REAL_VIDEOS
    from videozero.video.cache import VideoCache
    from videozero.video.zoom import DenseSources

    a, b = str(real_clip_path()), str(REAL_VIDEOS / "asl_gestures" / "milk.mkv")
    sources = DenseSources(2.0, 64, VideoCache(tmp_path / "cache"), keep=1)
    first = sources.of(a)()
    assert sources.of(a)() is first  # held: the questions of one video read its frames once
    other = sources.of(b)()
    assert other is not first and sources.of(b)() is other
    again = sources.of(a)()  # pushed out by b (keep=1): read again, from the frame cache
    assert again is not first and np.array_equal(again.frames, first.frames)
    assert sources.of(None)() is None
