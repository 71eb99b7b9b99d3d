"""Model-written questions: the questioner sees a video and a chosen evidence span and writes one question.

The questioner answers `writer_prompt` in the format
`<evidence>[s, e]</evidence><question>...</question><options>A. ...\\nB. ...</options><answer>B</answer>`.
Its output is untrusted text, so `parse_written` never raises: it returns a `Candidate`, and when the
output cannot be used it sets `reject_reason` to one of `REJECT_REASONS`, keeps whatever it could read,
and stores the raw output in `spec["raw_output"]`.

`write_questions` returns `WrittenQuestion`s, each a candidate with the engine `Sample` it was parsed
from (token ids, log-probs), rejected ones included: a trainer needs the sampled tokens of every output,
and `Candidate` itself stays free of model state.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from videozero.answer_format import MAX_TEXT_CHARS, parse_spans, render_spans
from videozero.models.engines.base import GenerationEngine, Sample, SamplingParams
from videozero.models.prompt import Request, VideoInput
from videozero.question_prompt import option_letter
from videozero.questioner.candidate import Candidate
from videozero.rewards import Span, normalise_option, normalise_text, temporal_iou

MIN_OPTIONS, MAX_OPTIONS = 2, 5
MIN_QUESTION_CHARS, MAX_QUESTION_CHARS = 3, 400
MAX_OPTION_CHARS = 200
MAX_COVERAGE = 0.9  # evidence covering more of the video than this is not localised
MAX_HINTS, MAX_HINT_CHARS = 8, 60

EMPTY = "unparseable: empty output"
TAG_ORDER = "unparseable: tag order"
NO_QUESTION = "unparseable: no question"
QUESTION_LENGTH = "unparseable: question length"
OPTIONS = "unparseable: options"
DUPLICATE_OPTIONS = "unparseable: duplicate options"
NO_ANSWER = "unparseable: no answer"
ANSWER_NOT_OPTION = "unparseable: answer not an option"
EVIDENCE = "unparseable: evidence"
DEGENERATE = "degenerate evidence"
REJECT_REASONS = frozenset(
    {
        EMPTY,
        TAG_ORDER,
        NO_QUESTION,
        QUESTION_LENGTH,
        OPTIONS,
        DUPLICATE_OPTIONS,
        NO_ANSWER,
        ANSWER_NOT_OPTION,
        EVIDENCE,
        DEGENERATE,
    }
)
"""Every `reject_reason` `parse_written` can set. When several apply, the first in this order is given:
empty output, tag order, question, options, answer, evidence, degenerate evidence."""

_TAGS = ("evidence", "question", "options", "answer")
_TAG = re.compile(r"<\s*(/?)\s*(evidence|question|options|answer)\s*>", re.IGNORECASE)
# An option marker: "(A)", "A.", "A)", "A:" at the start of a line or after a separator or a space.
_MARKER = re.compile(r"(?:^|(?<=[\s;|,]))(?:\(([A-Za-z])\)|([A-Za-z])\s?[.):](?=\s|$))", re.MULTILINE)


def render_written(spans: Sequence[Span], question: str, options: Sequence[str], answer: str) -> str:
    """The target text of one written question (`answer` is the option letter).

    >>> render_written([(12, 15.5)], "What does she pick up?", ["a cup", "a phone"], "B")
    '<evidence>[12.0, 15.5]</evidence><question>What does she pick up?</question><options>A. a cup\\nB. a phone</options><answer>B</answer>'
    """
    lines = "\n".join(f"{option_letter(i)}. {opt}" for i, opt in enumerate(options))
    return (
        f"<evidence>{render_spans(spans)}</evidence><question>{question}</question>"
        f"<options>{lines}</options><answer>{answer}</answer>"
    )


WRITER_FORMAT_EXAMPLE = render_written(
    [(12.0, 15.5)],
    "What does the person take out of the bag right after sitting down?",
    ["a bottle of water", "a phone", "a notebook", "a pair of glasses"],
    "C",
)

_FORMAT = (
    "<evidence>[s, e]</evidence><question>...</question><options>A. ...\nB. ...\nC. ...</options>"
    "<answer>B</answer>"
)


def _hints(labels: Sequence[str]) -> list[str]:
    seen: dict[str, str] = {}
    for label in labels:
        clean = " ".join(str(label).split())[:MAX_HINT_CHARS]
        if clean and clean.casefold() not in seen:
            seen[clean.casefold()] = clean
    return list(seen.values())[:MAX_HINTS]


def writer_prompt(spans: Sequence[Span], duration: float, hint_labels: Sequence[str] = ()) -> str:
    """The instruction the questioner reads after the video: write one question about `spans`.

    >>> print(writer_prompt([(12, 15.5)], 60, ["dog", "ball"]))
    This video is 60.0 seconds long. The evidence is at [12.0, 15.5] seconds. Things seen there may include: dog, ball.
    Write ONE multiple-choice question ... 2 to 5 short options, exactly one of them correct.
    Reply in exactly this format, ...
    <evidence>[s, e]</evidence><question>...</question><options>A. ...
    B. ...
    C. ...</options><answer>B</answer>
    For example, about another video:
    <evidence>[12.0, 15.5]</evidence>...<answer>C</answer>
    Now write yours, about [12.0, 15.5] seconds of this video.
    """
    if not spans:
        raise ValueError("writer_prompt needs at least one evidence span")
    ordered = sorted((min(s, e), max(s, e)) for s, e in spans)
    lines = [
        f"This video is {duration:.1f} seconds long. The evidence is at {render_spans(ordered)} seconds."
    ]
    hints = _hints(hint_labels)
    if hints:
        lines[0] += f" Things seen there may include: {', '.join(hints)}."
    lines += [
        "Write ONE multiple-choice question that can only be answered by watching what happens in that part "
        "of the video: not from a single frame taken elsewhere, and not from common sense or the wording of "
        "the question alone. Give 2 to 5 short options, exactly one of them correct.",
        "Reply in exactly this format, with the evidence span in seconds (several spans separated by commas "
        "if the evidence is in several places) and the letter of the correct option as the answer:",
        _FORMAT,
        "For example, about another video:",
        WRITER_FORMAT_EXAMPLE,
        # the span asked for comes last, nearest the write: a small writer otherwise copies the example
        f"Now write yours, about {render_spans(ordered)} seconds of this video.",
    ]
    return "\n".join(lines)


def _blocks(text: str) -> dict[str, tuple[int, str]]:
    """(position, body) of the first block of each tag. A block without its closing tag ends at the next
    opening tag or at the end of the text; stray closing tags of other names are ignored."""
    tags = [(m.start(), m.end(), m.group(1) == "/", m.group(2).lower()) for m in _TAG.finditer(text)]
    found: dict[str, tuple[int, str]] = {}
    for i, (start, end, closing, name) in enumerate(tags):
        if closing or name in found:
            continue
        stop = next((s for s, _, c, n in tags[i + 1 :] if not c or n == name), len(text))
        found[name] = (start, text[end:stop])
    return found


def _clean(text: str) -> str:
    return " ".join(text.split())


def _key(option: str) -> str:
    """What two options must differ in: their normalised text (casefolded text if nothing is left)."""
    return normalise_text(option) or _clean(option).casefold()


def split_options(body: str) -> list[str]:
    """Option texts without their letters: lettered "A. x", "A) x", "(A) x", "A: x" in order, else one
    per line, else separated by ";" or "|".

    >>> split_options("(A) a red car; (B) a blue bus | C: a bike")
    ['a red car', 'a blue bus', 'a bike']
    >>> split_options("A) the dog\\nb) the cat")
    ['the dog', 'the cat']
    >>> split_options("red\\n\\ngreen"), split_options("red | green")
    (['red', 'green'], ['red', 'green'])
    """
    cuts: list[tuple[int, int]] = []
    for match in _MARKER.finditer(body):
        letter = (match.group(1) or match.group(2)).upper()
        if letter == option_letter(len(cuts)):
            cuts.append((match.start(), match.end()))
    if cuts:
        ends = [start for start, _ in cuts[1:]] + [len(body)]
        items = [body[end:stop] for (_, end), stop in zip(cuts, ends, strict=True)]
    else:
        items = [line for line in body.splitlines() if line.strip()]
        if len(items) < 2:
            items = re.split(r"[;|]", body)
    cleaned = [_clean(item).strip(" ;|,") for item in items]
    # a lettered option left empty is kept (and rejected later); an empty unlettered line is not an option
    return cleaned if cuts else [item for item in cleaned if item]


def _answer_letter(answer: str, options: Sequence[str]) -> str | None:
    letters = [option_letter(i) for i in range(len(options))]
    letter = normalise_option(answer)
    if letter in letters:
        return letter
    key = _key(answer)
    return next((letters[i] for i, opt in enumerate(options) if _key(opt) == key), None)


def _finite_duration(duration: float) -> float | None:
    try:
        value = float(duration)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def parse_written(
    text: object,
    duration: float,
    requested: Sequence[Span],
    family: str = "model",
    level: int = 0,
    segment_ids: Sequence[int] = (),
) -> Candidate:
    """Read a questioner output into a `Candidate`; never raises.

    Tolerated: tags in any case and with inner spaces, text around the tags (e.g. a <think> block),
    repeated tags (the first counts), an unclosed block (it ends at the next tag or the end of the text),
    options lettered or not, one per line or separated by ";" / "|", the answer as "B", "(B)", "B. text"
    or the option's text, reversed spans (reordered) and spans partly outside the video (clamped).
    The tags must come in the order evidence, question, options, answer. A usable output gets
    `reject_reason=None`; otherwise the first reason (see REJECT_REASONS) is set and what was read kept.
    `spec["evidence_overlap"]` is the temporal IoU of the written evidence with the `requested` spans
    (written whenever both exist, so the verifier can judge evidence that drifted from the request).

    >>> c = parse_written(
    ...     "<evidence>[3, 1]</evidence><question>Who waves?</question><options>A) a man; B) a woman</options>"
    ...     "<answer>(b)</answer>", duration=10, requested=[(1, 3)])
    >>> c.reject_reason, c.text, c.options, c.answer, c.evidence, c.spec["evidence_overlap"]
    (None, 'Who waves?', ('a man', 'a woman'), 'B', ((1.0, 3.0),), 1.0)
    >>> parse_written("<question>Who?</question>", 10, [(1, 3)]).reject_reason
    'unparseable: options'
    """
    raw = text[:MAX_TEXT_CHARS] if isinstance(text, str) else ""
    raw = raw.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    spec: dict[str, Any] = {
        "answer_kind": "option",
        "requested_evidence": [[float(s), float(e)] for s, e in requested],
        "raw_output": raw,
    }
    reasons: list[str] = []
    question, answer = "", ""
    options: tuple[str, ...] | None = None
    evidence: tuple[Span, ...] = ()
    blocks = _blocks(raw)
    if not raw.strip():
        reasons.append(EMPTY)
    present = [name for name in _TAGS if name in blocks]
    if [blocks[n][0] for n in present] != sorted(blocks[n][0] for n in present):
        reasons.append(TAG_ORDER)

    question = _clean(blocks["question"][1]) if "question" in blocks else ""
    if not question:
        reasons.append(NO_QUESTION)
    elif not MIN_QUESTION_CHARS <= len(question) <= MAX_QUESTION_CHARS:
        reasons.append(QUESTION_LENGTH)
        question = question[:MAX_QUESTION_CHARS]

    if "options" in blocks:
        parsed = split_options(blocks["options"][1])
        options = tuple(opt[:MAX_OPTION_CHARS] for opt in parsed[: MAX_OPTIONS + 1])
        if not (MIN_OPTIONS <= len(parsed) <= MAX_OPTIONS) or not all(
            0 < len(opt) <= MAX_OPTION_CHARS for opt in parsed
        ):
            reasons.append(OPTIONS)
        elif len({_key(opt) for opt in parsed}) < len(parsed):
            reasons.append(DUPLICATE_OPTIONS)
    else:
        reasons.append(OPTIONS)

    written = _clean(blocks["answer"][1]) if "answer" in blocks else ""
    if not written:
        reasons.append(NO_ANSWER)
    else:
        letter = _answer_letter(written, options or ())
        if letter is None:
            reasons.append(ANSWER_NOT_OPTION)
            answer = written[:MAX_OPTION_CHARS]
        else:
            answer = letter

    total = _finite_duration(duration)
    if "evidence" in blocks:
        evidence, span_problem = parse_spans(blocks["evidence"][1], total)
        if span_problem:
            reasons.append(EVIDENCE)
        elif (
            total is None
            or any(e - s <= 0 for s, e in evidence)
            or temporal_iou(evidence, [(0.0, total)]) > MAX_COVERAGE
        ):
            reasons.append(DEGENERATE)
        if evidence and requested:
            spec["evidence_overlap"] = temporal_iou(evidence, [tuple(r) for r in spec["requested_evidence"]])
    else:
        reasons.append(EVIDENCE)

    return Candidate(
        family=family,
        text=question,
        answer=answer,
        evidence=evidence,
        options=options,
        level=level,
        spec=spec,
        segment_ids=tuple(segment_ids),
        writer="model",
        reject_reason=reasons[0] if reasons else None,
    )


class WriterConfig(BaseModel):
    """Sampling of the questioner's writes."""

    temperature: float = Field(1.0, ge=0, description="sampling temperature (0: greedy)")
    max_new_tokens: int = Field(160, ge=1, description="longest write")
    n: int = Field(4, ge=1, description="writes sampled per evidence choice")
    logprobs: bool = Field(False, description="keep the log-probs of the sampled tokens on each Sample")


@dataclass(frozen=True)
class WriterInput:
    """One evidence choice to write about: the request (video + `writer_prompt`), the video's duration,
    the requested spans, and the mined segments and level they come from."""

    request: Request
    duration: float
    spans: tuple[Span, ...]
    segment_ids: tuple[int, ...] = ()
    level: int = 0


@dataclass(frozen=True)
class WrittenQuestion:
    """A parsed write (possibly rejected) and the engine sample it came from."""

    candidate: Candidate
    sample: Sample


def writer_input(
    video: VideoInput,
    duration: float,
    spans: Sequence[Span],
    segment_ids: Sequence[int] = (),
    level: int = 0,
    hint_labels: Sequence[str] = (),
) -> WriterInput:
    """The writer request for `video` with evidence `spans` (hint labels go into the prompt)."""
    ordered = tuple(sorted((float(min(s, e)), float(max(s, e))) for s, e in spans))
    request = Request(writer_prompt(ordered, duration, hint_labels), video)
    return WriterInput(request, float(duration), ordered, tuple(int(i) for i in segment_ids), level)


def write_questions(
    engine: GenerationEngine, inputs: Sequence[WriterInput], config: WriterConfig | None = None
) -> list[list[WrittenQuestion]]:
    """`config.n` writes per input, each parsed: one list per input, rejected writes included."""
    config = config or WriterConfig()
    if not inputs:
        return []
    params = SamplingParams(
        n=config.n,
        temperature=config.temperature,
        max_new_tokens=config.max_new_tokens,
        logprobs=config.logprobs,
    )
    outputs = engine.generate([item.request for item in inputs], params)
    if len(outputs) != len(inputs):
        raise ValueError(f"the engine answered {len(outputs)} of {len(inputs)} requests")
    return [
        [
            WrittenQuestion(
                parse_written(
                    sample.text,
                    item.duration,
                    item.spans,
                    level=item.level,
                    segment_ids=item.segment_ids,
                ),
                sample,
            )
            for sample in samples
        ]
        for item, samples in zip(inputs, outputs, strict=True)
    ]
