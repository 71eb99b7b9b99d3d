"""The text a solver reads for a question: the question, its lettered options, and the answer format."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from videozero.answer_format import format_instruction


def option_letter(index: int) -> str:
    """A, B, C, ... for option `index`.

    >>> option_letter(2)
    'C'
    """
    return chr(ord("A") + index)


def answer_kind(options: Sequence[str] | None, spec: Mapping[str, Any] | None) -> str:
    """What the answer is: the question's own `answer_kind`, else an option letter when there are options.

    >>> answer_kind(["x", "y"], {})
    'option'
    >>> answer_kind(None, {"answer_kind": "permutation"})
    'permutation'
    """
    if spec and spec.get("answer_kind"):
        return str(spec["answer_kind"])
    return "option" if options else "text"


def question_prompt(
    text: str, options: Sequence[str] | None = None, spec: Mapping[str, Any] | None = None
) -> str:
    """The question text a model sees after the video.

    >>> print(question_prompt("Which clip comes first?", ["the red one", "the blue one"]))
    Which clip comes first?
    A. the red one
    B. the blue one
    Reply as <think>brief reasoning</think><evidence>[start, end] in seconds</evidence><answer>the letter of the correct option</answer>, with several evidence spans separated by commas.
    """
    lines = [text.strip()]
    lines += [f"{option_letter(i)}. {opt}" for i, opt in enumerate(options or [])]
    lines.append(format_instruction(answer_kind(options, spec)))
    return "\n".join(lines)
