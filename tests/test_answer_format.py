"""The answer format: rendering, and a parser that treats model output as untrusted input."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from videozero.answer_format import parse_answer, parse_spans, render_answer, tag_regions

TAGS = [
    "<think>",
    "</think>",
    "<evidence>",
    "</evidence>",
    "<answer>",
    "</answer>",
    "[",
    "]",
    ",",
    "nan",
    "1e309",
    "-3",
    "2.5",
    "inf",
    " ",
    "B",
    "\n",
]
tagged_text = st.lists(st.one_of(st.sampled_from(TAGS), st.text(max_size=6)), max_size=40).map("".join)
finite_time = st.floats(min_value=0, max_value=3600, allow_nan=False, allow_infinity=False)


def _check_invariants(parsed, duration=None) -> None:
    assert isinstance(parsed.format_ok, bool)
    assert parsed.format_ok == (parsed.reason == "")
    for s, e in parsed.spans:
        assert math.isfinite(s) and math.isfinite(e)
        assert 0 <= s <= e
        if duration is not None:
            assert e <= duration
    assert list(parsed.spans) == sorted(parsed.spans)
    if parsed.format_ok:
        assert parsed.answer and parsed.spans


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_parser_survives_arbitrary_text(text: str) -> None:
    _check_invariants(parse_answer(text))


@settings(max_examples=400, deadline=None)
@given(tagged_text, st.one_of(st.none(), finite_time))
def test_parser_survives_tag_soup(text: str, duration: float | None) -> None:
    parsed = parse_answer(text, duration=duration)
    _check_invariants(parsed, duration)
    regions = tag_regions(text)
    assert all(0 <= a < b <= len(text) for _, a, b in regions)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(finite_time, finite_time), min_size=1, max_size=4),
    st.text(alphabet="ABCDEFG0123456789 ,", min_size=1, max_size=12).filter(lambda s: s.strip()),
    st.text(alphabet="abc xyz.", max_size=30),
)
def test_rendered_answers_parse_back(spans, answer: str, think: str) -> None:
    parsed = parse_answer(render_answer(spans, answer, think))
    assert parsed.format_ok, parsed.reason
    assert parsed.answer == " ".join(answer.split())
    expected = sorted((round(min(a, b), 1), round(max(a, b), 1)) for a, b in spans)
    got = sorted(parsed.spans)
    assert len(got) == len(expected)
    for (s, e), (s2, e2) in zip(got, expected, strict=True):
        assert abs(s - s2) < 0.051 and abs(e - e2) < 0.051


def test_non_text_and_garbage() -> None:
    assert parse_answer(None).reason == "output is NoneType, not text"
    assert not parse_answer(b"<answer>A</answer>").format_ok
    assert parse_answer("").reason.startswith("no <answer> block")


def test_spans_are_ordered_clamped_and_validated() -> None:
    parsed = parse_answer("<evidence>[5, 2], [9.5, 12.0]</evidence><answer>C</answer>", duration=10.0)
    assert parsed.format_ok and parsed.spans == ((2.0, 5.0), (9.5, 10.0))
    assert parse_spans("[-3, 2]") == (((0.0, 2.0),), "")
    assert not parse_answer("<evidence>[nan, 2]</evidence><answer>C</answer>").format_ok
    assert not parse_answer("<evidence>[1, 1e12]</evidence><answer>C</answer>").format_ok
    assert not parse_answer("<evidence>[inf, 2]</evidence><answer>C</answer>").format_ok
    many = ", ".join("[1, 2]" for _ in range(20))
    assert "more than" in parse_answer(f"<evidence>{many}</evidence><answer>C</answer>").reason
    assert parse_spans("[1.5 s, 3 seconds]")[0] == ((1.5, 3.0),)


def test_structure_problems_are_named() -> None:
    assert "out of order" in parse_answer("<answer>A</answer><evidence>[1, 2]</evidence>").reason
    assert "outside" in parse_answer("The answer: <evidence>[1, 2]</evidence><answer>A</answer>").reason
    unclosed = parse_answer("<evidence>[1, 2]</evidence><answer>A")
    assert unclosed.answer == "A" and not unclosed.format_ok and "never closed" in unclosed.reason
    assert "empty" in parse_answer("<evidence>[1, 2]</evidence><answer>  </answer>").reason
    assert (
        "2 <answer> blocks"
        in parse_answer("<evidence>[1,2]</evidence><answer>A</answer><answer>B</answer>").reason
    )
    blind = parse_answer("<think>x</think><answer>D</answer>", require_evidence=False)
    assert blind.format_ok and blind.answer == "D" and blind.think == "x"
