"""Model-written questions: the writer prompt, the defensive parser, and writes sampled from tiny-qwen."""

from __future__ import annotations

import numpy as np
import pytest

from tests.model_builds import noise_frames, tiny_qwen_dir
from videozero.models.prompt import VideoInput
from videozero.questioner import writer as w
from videozero.questioner.candidate import Candidate
from videozero.questioner.writer import (
    REJECT_REASONS,
    WRITER_FORMAT_EXAMPLE,
    WriterConfig,
    WrittenQuestion,
    parse_written,
    render_written,
    write_questions,
    writer_input,
    writer_prompt,
)

DURATION = 60.0
REQUESTED = [(12.0, 15.5)]
OPTS = "<options>A. a red cup\nB. a blue phone\nC. a green book</options>"


def _parse(text: object, requested=REQUESTED) -> Candidate:
    return parse_written(text, DURATION, requested, level=2, segment_ids=(7, 9))


def _good(c: Candidate) -> None:
    assert c.reject_reason is None, c.reject_reason
    assert c.text == "What does the man pick up?"
    assert c.options == ("a red cup", "a blue phone", "a green book")
    assert c.answer == "B"
    assert c.family == "model" and c.writer == "model" and c.kind == "option"
    assert c.level == 2 and c.segment_ids == (7, 9)


@pytest.mark.parametrize(
    "text",
    [
        "<evidence>[12.0, 15.5]</evidence><question>What does the man pick up?</question>"
        + OPTS
        + "<answer>B</answer>",
        # case, inner spaces and whitespace everywhere
        "  <EVIDENCE> [ 12 , 15.5 ] </Evidence>\n<Question>\n What  does the man\npick up? </QUESTION>\n"
        "<Options>\n A. a red cup \n\n B. a blue phone\n C. a green book \n</OPTIONS>\n< answer > b </ answer >\n",
        # "A) x" on one line separated by ";", answer "(B)"
        "<evidence>[12, 15.5]</evidence><question>What does the man pick up?</question>"
        "<options>A) a red cup; B) a blue phone; C) a green book</options><answer>(B)</answer>",
        # "(A) x" separated by "|", answer "B. text"
        "<evidence>[12, 15.5]</evidence><question>What does the man pick up?</question>"
        "<options>(A) a red cup | (B) a blue phone | (C) a green book</options><answer>B. a blue phone</answer>",
        # "A: x", answer given as the option text
        "<evidence>[12, 15.5]</evidence><question>What does the man pick up?</question>"
        "<options>A: a red cup\nB: a blue phone\nC: a green book</options><answer>A blue phone.</answer>",
        # options without letters, one per line
        "<evidence>[12, 15.5]</evidence><question>What does the man pick up?</question>"
        "<options>a red cup\na blue phone\na green book</options><answer>B</answer>",
        # a think block before, duplicated tags (the first counts), reversed span
        "<think>look at 12 s</think><evidence>[15.5, 12]</evidence><question>What does the man pick up?"
        "</question><question>Another?</question>" + OPTS + "<answer>B</answer><answer>C</answer>",
        # options block never closed before <answer>
        "<evidence>[12, 15.5]</evidence><question>What does the man pick up?</question>"
        "<options>A. a red cup\nB. a blue phone\nC. a green book<answer>B</answer>",
    ],
)
def test_tolerated_variants_parse(text: str) -> None:
    c = _parse(text)
    _good(c)
    assert c.evidence == ((12.0, 15.5),)
    assert c.spec["evidence_overlap"] == 1.0
    assert c.spec["requested_evidence"] == [[12.0, 15.5]]
    assert c.spec["raw_output"] == text


def test_unclosed_options_and_answer_at_end_of_text() -> None:
    c = _parse(
        "<evidence>[12, 15.5]</evidence><question>Which colour is the cup?</question><answer>A</answer>"
        "<options>A. red\nB. blue"
    )
    assert c.reject_reason == w.TAG_ORDER  # the answer before the options
    c = _parse(
        "<evidence>[12, 15.5]</evidence><question>Which colour is the cup?</question><options>A. red\nB. blue"
    )
    assert c.options == ("red", "blue") and c.reject_reason == w.NO_ANSWER
    c = _parse(
        "<evidence>[12, 15.5]</evidence><question>Which colour is the cup?</question><options>A. red\nB. blue"
        "</options><answer>B"
    )
    assert c.reject_reason is None and c.answer == "B"


def test_several_spans_non_ascii_and_clamping() -> None:
    text = (
        "<evidence>[1, 3], [50, 70]</evidence><question>¿Qué ocurre después del 猫?</question>"
        "<options>A. 犬が走る\nB. 猫が寝る</options><answer>A</answer>"
    )
    c = _parse(text, requested=[(1.0, 3.0), (50.0, 60.0)])
    assert c.reject_reason is None
    assert c.evidence == ((1.0, 3.0), (50.0, 60.0))
    assert c.options == ("犬が走る", "猫が寝る") and c.text.startswith("¿Qué")
    assert c.spec["evidence_overlap"] == 1.0


def test_evidence_away_from_the_request_is_kept_with_its_overlap() -> None:
    c = _parse(render_written([(40, 44)], "What does the man pick up?", ["a", "b"], "A"))
    assert c.reject_reason is None
    assert c.spec["evidence_overlap"] == 0.0
    partial = _parse(render_written([(14, 17.5)], "What does the man pick up?", ["a", "b"], "A"))
    assert partial.spec["evidence_overlap"] == pytest.approx(1.5 / 5.5)


def _with(evidence="[12, 15.5]", question="What does the man pick up?", options=OPTS, answer="B") -> str:
    return f"<evidence>{evidence}</evidence><question>{question}</question>{options}<answer>{answer}</answer>"


HOSTILE = {
    "empty": ("", w.EMPTY),
    "blank": ("  \n\t ", w.EMPTY),
    "garbage": ("qwk <|im_end|> zzz 12 15 B", w.NO_QUESTION),
    "no question": (_with(question=""), w.NO_QUESTION),
    "question too short": (_with(question="Hm"), w.QUESTION_LENGTH),
    "question too long": (_with(question="why " * 150), w.QUESTION_LENGTH),
    "missing answer": (_with().split("<answer>")[0], w.NO_ANSWER),
    "empty answer": (_with(answer=" "), w.NO_ANSWER),
    "answer not an option": (_with(answer="D"), w.ANSWER_NOT_OPTION),
    "answer text not an option": (_with(answer="a yellow hat"), w.ANSWER_NOT_OPTION),
    "no options": (_with(options=""), w.OPTIONS),
    "one option": (_with(options="<options>A. a red cup</options>", answer="A"), w.OPTIONS),
    "seven options": (
        _with(options="<options>" + "\n".join(f"{chr(65 + i)}. thing {i}" for i in range(7)) + "</options>"),
        w.OPTIONS,
    ),
    "empty option": (_with(options="<options>A. a red cup\nB.\nC. a book</options>"), w.OPTIONS),
    "duplicated options": (
        _with(options="<options>A. a red cup\nB. A red cup.\nC. a book</options>"),
        w.DUPLICATE_OPTIONS,
    ),
    "no evidence": (_with().split("</evidence>")[1], w.EVIDENCE),
    "evidence without a span": (_with(evidence="around 12 s"), w.EVIDENCE),
    "NaN span": (_with(evidence="[nan, 15]"), w.EVIDENCE),
    "inf span": (_with(evidence="[12, inf]"), w.EVIDENCE),
    "one good one NaN span": (_with(evidence="[12, 15], [nan, 3]"), w.EVIDENCE),
    "absurd span": (_with(evidence="[1e9, 2e9]"), w.EVIDENCE),
    "zero-length span": (_with(evidence="[12, 12]"), w.DEGENERATE),
    "span outside the video": (_with(evidence="[70, 80]"), w.DEGENERATE),
    "span before the video": (_with(evidence="[-8, -2]"), w.DEGENERATE),
    "whole video": (_with(evidence="[0, 60]"), w.DEGENERATE),
    "91% of the video": (_with(evidence="[0, 30], [30.5, 55]"), w.DEGENERATE),
    "tags in wrong order": (
        "<question>What does the man pick up?</question><evidence>[12, 15.5]</evidence>"
        + OPTS
        + "<answer>B</answer>",
        w.TAG_ORDER,
    ),
    "100k chars of junk": ("x<" * 50_000, w.NO_QUESTION),
    "100k junk after a good question": (_with() + "junk " * 20_000, None),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_outputs_give_the_exact_reason(name: str) -> None:
    text, reason = HOSTILE[name]
    c = _parse(text)
    assert isinstance(c, Candidate)
    assert c.reject_reason == reason
    assert reason is None or reason in REJECT_REASONS
    assert c.spec["raw_output"] == text[:20_000]
    assert c.family == "model" and c.writer == "model"
    assert c.segment_ids == (7, 9) and c.level == 2


def test_what_could_be_read_is_kept_on_a_rejected_candidate() -> None:
    c = _parse(_with(answer="E"))
    assert c.reject_reason == w.ANSWER_NOT_OPTION
    assert c.text == "What does the man pick up?" and c.options == (
        "a red cup",
        "a blue phone",
        "a green book",
    )
    assert c.answer == "E" and c.evidence == ((12.0, 15.5),)


@pytest.mark.parametrize("text", [None, 42, b"<question>x</question>", ["a"]])
def test_non_text_is_an_empty_output(text: object) -> None:
    c = _parse(text)
    assert c.reject_reason == w.EMPTY and c.spec["raw_output"] == ""


@pytest.mark.parametrize("duration", [0.0, -1.0, float("nan"), float("inf")])
def test_a_bad_duration_makes_any_evidence_degenerate(duration: float) -> None:
    c = parse_written(_with(), duration, REQUESTED)
    assert c.reject_reason == w.DEGENERATE


def test_raw_output_keeps_no_nul_and_no_lone_surrogate() -> None:
    c = _parse(_with() + "\x00\ud800")
    assert c.reject_reason is None
    assert "\x00" not in c.spec["raw_output"]
    c.spec["raw_output"].encode("utf-8")


@pytest.mark.parametrize(
    ("spans", "options", "answer"),
    [
        ([(12.0, 15.5)], ["a red cup", "a blue phone"], "A"),
        ([(1.0, 2.0), (30.0, 31.5)], ["left", "right", "up", "down", "nowhere"], "E"),
        ([(0.0, 54.0)], ["ja", "nein", "vielleicht"], "C"),
    ],
)
def test_render_then_parse_round_trips(spans, options, answer) -> None:
    text = render_written(spans, "Which way does the ball roll?", options, answer)
    c = parse_written(text, DURATION, spans)
    assert c.reject_reason is None
    assert (c.evidence, c.text, c.options, c.answer) == (
        tuple(spans),
        "Which way does the ball roll?",
        tuple(options),
        answer,
    )
    assert render_written(c.evidence, c.text, c.options, c.answer) == text


def test_writer_prompt_marks_the_span_and_states_the_format() -> None:
    prompt = writer_prompt([(15.5, 12.0)], DURATION, ["dog", " dog ", "red ball", ""])
    assert "The evidence is at [12.0, 15.5] seconds" in prompt
    assert "Things seen there may include: dog, red ball." in prompt
    assert "<evidence>[s, e]</evidence><question>...</question><options>A. ..." in prompt
    assert WRITER_FORMAT_EXAMPLE in prompt
    assert "may include" not in writer_prompt([(1, 2), (5, 6)], 10)
    assert "[1.0, 2.0], [5.0, 6.0]" in writer_prompt([(5, 6), (1, 2)], 10)
    assert parse_written(WRITER_FORMAT_EXAMPLE, DURATION, REQUESTED).reject_reason is None
    with pytest.raises(ValueError):
        writer_prompt([], DURATION)


def test_writer_config_bounds() -> None:
    assert WriterConfig().model_dump() == {
        "temperature": 1.0,
        "max_new_tokens": 160,
        "n": 4,
        "logprobs": False,
    }
    with pytest.raises(ValueError):
        WriterConfig(n=0)


def test_tiny_qwen_writes_come_back_as_candidates() -> None:
    """A random-init model writes garbage: every write is a candidate, rejected with a reason, raw kept."""
    from videozero.models.engines.transformers_engine import TransformersEngine
    from videozero.models.loader import load_model

    lm = load_model(tiny_qwen_dir("qwen3_vl"), device="cpu")
    engine = TransformersEngine(lm, batch_size=4)
    video = VideoInput(noise_frames(4, (64, 64)), np.array([0.0, 1.0, 2.0, 3.0]))
    inputs = [
        writer_input(video, 4.0, [(1.0, 2.0)], segment_ids=(3,), level=1, hint_labels=["person"]),
        writer_input(video, 4.0, [(3.0, 2.5), (0.0, 0.5)]),
    ]
    assert inputs[1].spans == ((0.0, 0.5), (2.5, 3.0))
    out = write_questions(engine, inputs, WriterConfig(n=3, max_new_tokens=24))
    assert [len(group) for group in out] == [3, 3]
    for item, group in zip(inputs, out, strict=True):
        for written in group:
            assert isinstance(written, WrittenQuestion)
            c = written.candidate
            assert isinstance(c, Candidate) and c.writer == "model"
            assert c.spec["raw_output"] == written.sample.text[:20_000]
            assert written.sample.token_ids
            assert c.segment_ids == item.segment_ids and c.level == item.level
            assert c.spec["requested_evidence"] == [list(s) for s in item.spans]
            assert c.reject_reason is None or c.reject_reason in REJECT_REASONS
    assert any(wq.candidate.reject_reason for group in out for wq in group)
    assert write_questions(engine, [], WriterConfig()) == []
