"""The answer format, grounding first: `<think>...</think><evidence>[s, e]</evidence><answer>...</answer>`.

Questioner and solver outputs are untrusted text. `parse_answer` never raises: it returns what it could
read, whether the whole output followed the format, and why not.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

MAX_SPANS = 8
MAX_SECONDS = 24 * 3600.0
MAX_ANSWER_CHARS = 200
MAX_TEXT_CHARS = 20_000

FORMAT_INSTRUCTION = (
    "Reply as <think>brief reasoning</think><evidence>[start, end] in seconds</evidence>"
    "<answer>{answer_kind}</answer>, with several evidence spans separated by commas."
)  # 42 tokens for SmolLM2's tokenizer: every prompt carries it, so it is kept short

ANSWER_END = "</answer>"  # a solver's completion ends here: generation stops at it

ANSWER_KINDS = {
    "option": "the letter of the correct option",
    "permutation": "the order as letters or numbers separated by commas",
    "number": "a number",
    "text": "a few words",
}

_TAG = re.compile(r"<(/?)(think|evidence|answer)>", re.IGNORECASE)
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf(?:inity)?)"
_SPAN = re.compile(
    rf"\[\s*({_NUMBER})\s*(?:s\b|sec\b|seconds\b)?\s*[,;]\s*({_NUMBER})\s*(?:s|sec|seconds)?\s*\]", re.I
)


@dataclass(frozen=True)
class ParsedAnswer:
    """What a model output says: its answer, its evidence spans (seconds), and whether the format held."""

    answer: str | None
    spans: tuple[tuple[float, float], ...]
    format_ok: bool
    reason: str
    think: str = ""


def format_instruction(answer_kind: str = "option") -> str:
    """The instruction appended to every question; `answer_kind` is one of ANSWER_KINDS."""
    return FORMAT_INSTRUCTION.format(answer_kind=ANSWER_KINDS.get(answer_kind, answer_kind))


def render_spans(spans: Sequence[tuple[float, float]]) -> str:
    """Spans as the model should write them.

    >>> render_spans([(1, 2.25), (4.0, 5.0)])
    '[1.0, 2.2], [4.0, 5.0]'
    """
    return ", ".join(f"[{s:.1f}, {e:.1f}]" for s, e in spans)


def render_answer(spans: Sequence[tuple[float, float]], answer: str, think: str = "") -> str:
    """The target text of one answer, for supervised targets and exports.

    >>> render_answer([(1.0, 2.5)], "B")
    '<think></think><evidence>[1.0, 2.5]</evidence><answer>B</answer>'
    """
    return f"<think>{think}</think><evidence>{render_spans(spans)}</evidence><answer>{answer}</answer>"


def parse_spans(
    text: str, duration: float | None = None, max_spans: int = MAX_SPANS
) -> tuple[tuple[tuple[float, float], ...], str]:
    """Spans read from `text`, each ordered and clamped to [0, duration]; plus a reason if any was bad.

    >>> parse_spans("[3, 1.5], [2.0, 9]", duration=5.0)
    (((1.5, 3.0), (2.0, 5.0)), '')
    >>> parse_spans("[nan, 2]")
    ((), 'a span holds a value that is not a finite number')
    """
    spans: list[tuple[float, float]] = []
    reason = ""
    for match in _SPAN.finditer(text):
        try:
            a, b = float(match.group(1)), float(match.group(2))
        except ValueError:  # pragma: no cover - the pattern only matches numbers
            reason = reason or "a span holds a value that is not a number"
            continue
        if not (math.isfinite(a) and math.isfinite(b)):
            reason = reason or "a span holds a value that is not a finite number"
            continue
        if max(abs(a), abs(b)) > MAX_SECONDS:
            reason = reason or "a span lies absurdly far outside any video"
            continue
        s, e = min(a, b), max(a, b)
        s, e = max(0.0, s), max(0.0, e)
        if duration is not None and duration >= 0:
            s, e = min(s, duration), min(e, duration)
        spans.append((s, e))
    if len(spans) > max_spans:
        return (), f"more than {max_spans} spans"
    if not spans and not reason:
        reason = "no [start, end] span"
    spans.sort()
    return tuple(spans), reason


def _clean_answer(text: str) -> str:
    return " ".join(text.split())[:MAX_ANSWER_CHARS]


def parse_answer(text: object, duration: float | None = None, require_evidence: bool = True) -> ParsedAnswer:
    """Read a model output defensively; never raises.

    `format_ok` holds when the output is exactly an optional <think> block, one <evidence> block with at
    least one valid span (unless `require_evidence` is false), and one non-empty <answer> block, in that
    order, with nothing but whitespace around them.

    >>> parse_answer("<think>red</think><evidence>[1, 2]</evidence><answer> B </answer>")
    ParsedAnswer(answer='B', spans=((1.0, 2.0),), format_ok=True, reason='', think='red')
    >>> parse_answer("B").reason
    'no <answer> block; no <evidence> block; text outside the tags'
    """
    if not isinstance(text, str):
        return ParsedAnswer(None, (), False, f"output is {type(text).__name__}, not text")
    text = text[:MAX_TEXT_CHARS]
    blocks: dict[str, list[tuple[int, int, int, int]]] = {"think": [], "evidence": [], "answer": []}
    problems: list[str] = []
    open_tag: tuple[str, int, int] | None = None
    outside: list[str] = []
    cursor = 0
    for match in _TAG.finditer(text):
        closing, name = match.group(1) == "/", match.group(2).lower()
        if open_tag is None:
            outside.append(text[cursor : match.start()])
            if closing:
                problems.append(f"</{name}> without <{name}>")
                cursor = match.end()
                continue
            open_tag = (name, match.start(), match.end())
        else:
            if not closing or name != open_tag[0]:
                problems.append(f"<{match.group(1)}{name}> inside <{open_tag[0]}>")
                continue
            blocks[name].append((open_tag[1], open_tag[2], match.start(), match.end()))
            open_tag = None
        cursor = match.end()
    if open_tag is not None:
        problems.append(f"<{open_tag[0]}> is never closed")
        # an unclosed <answer> still yields its text, but the format is broken
        if open_tag[0] == "answer":
            blocks["answer"].append((open_tag[1], open_tag[2], len(text), len(text)))
        cursor = len(text)
    outside.append(text[cursor:])

    def body(name: str) -> str | None:
        found = blocks[name]
        if not found:
            return None
        _, start, end, _ = found[-1]
        return text[start:end]

    answer_text = body("answer")
    evidence_text = body("evidence")
    think_text = body("think") or ""
    answer = _clean_answer(answer_text) if answer_text is not None else None
    spans, span_reason = parse_spans(evidence_text, duration) if evidence_text is not None else ((), "")

    if answer_text is None:
        problems.insert(0, "no <answer> block")
    elif not answer:
        problems.append("the <answer> block is empty")
        answer = None
    if require_evidence:
        if evidence_text is None:
            problems.append("no <evidence> block")
        elif span_reason:
            problems.append(f"evidence: {span_reason}")
    for name, found in blocks.items():
        if len(found) > 1:
            problems.append(f"{len(found)} <{name}> blocks")
    if any(chunk.strip() for chunk in outside):
        problems.append("text outside the tags")
    order = [name for name in ("think", "evidence", "answer") if blocks[name]]
    starts = [blocks[name][0][0] for name in order]
    if starts != sorted(starts):
        problems.append("blocks out of order (think, evidence, answer)")
    reason = "; ".join(problems)
    return ParsedAnswer(answer, spans, not problems, reason, think_text.strip()[:MAX_TEXT_CHARS])


def tag_regions(text: str) -> list[tuple[str, int, int]]:
    """(tag, start, end) character ranges of each <think>/<evidence>/<answer> block, tags included.

    Used to tell which completion tokens lie inside the evidence and which inside the answer.

    >>> tag_regions("<think></think><evidence>[1, 2]</evidence><answer>B</answer>")
    [('think', 0, 15), ('evidence', 15, 42), ('answer', 42, 60)]
    """
    regions: list[tuple[str, int, int]] = []
    open_tag: tuple[str, int] | None = None
    for match in _TAG.finditer(text):
        closing, name = match.group(1) == "/", match.group(2).lower()
        if not closing and open_tag is None:
            open_tag = (name, match.start())
        elif closing and open_tag is not None and open_tag[0] == name:
            regions.append((name, open_tag[1], match.end()))
            open_tag = None
    if open_tag is not None:
        regions.append((open_tag[0], open_tag[1], len(text)))
    return regions


# -- the zoom tool's call (VideoZoomer): <video_zoom>{"segment": [s, e], "fps": n}</video_zoom> -------------

ZOOM_END = "</video_zoom>"  # a tool call ends here: generation stops at it and the tool answers
MAX_CALL_CHARS = 400


@dataclass(frozen=True)
class ZoomCall:
    """A zoom the model asked for: one span of the video and the frame rate to show it at, or why the call
    could not be read (`error`, a short sentence the tool turn shows the model)."""

    segment: tuple[float, float] | None
    fps: float | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def render_zoom_call(segment: tuple[float, float], fps: float | None = None, think: str = "") -> str:
    """A tool call as the model should write it (warm-up targets); without `fps` the tool picks the
    highest rate the call's frame budget allows.

    >>> render_zoom_call((2.0, 4.5))
    '<think></think><video_zoom>{"segment": [2.0, 4.5]}</video_zoom>'
    >>> render_zoom_call((2.0, 4.5), 2)
    '<think></think><video_zoom>{"segment": [2.0, 4.5], "fps": 2}</video_zoom>'
    """
    rate = "" if fps is None else f', "fps": {fps:g}'
    return f'<think>{think}</think><video_zoom>{{"segment": [{segment[0]:.1f}, {segment[1]:.1f}]{rate}}}</video_zoom>'


def parse_zoom_call(text: object, duration: float | None, max_frames: int, max_fps: float) -> ZoomCall | None:
    """The zoom call at the end of a model turn, read defensively (never raises): None when the turn holds
    no `<video_zoom>` block; otherwise the call, or an error naming what was wrong (not JSON, no segment,
    a segment outside the video or of no length, an fps that is not positive, too many frames).

    >>> parse_zoom_call('<think>x</think><video_zoom>{"segment": [2, 4], "fps": 2}</video_zoom>', 10, 16, 8)
    ZoomCall(segment=(2.0, 4.0), fps=2.0, error='')
    >>> parse_zoom_call('<video_zoom>{"segment": [2, 40]}</video_zoom>', 10, 16, 8).error
    'the segment [2, 40] is not inside the video (0 to 10.0 s)'
    >>> parse_zoom_call('<video_zoom>[2, 4</video_zoom>', 10, 16, 8).error
    'the call is not JSON: write {"segment": [start, end], "fps": n}'
    >>> parse_zoom_call("<answer>B</answer>", 10, 16, 8) is None
    True
    """
    if not isinstance(text, str):
        return None
    lower = text.lower()
    end = lower.rfind(ZOOM_END)
    start = lower.rfind("<video_zoom>", 0, max(end, 0))
    if end < 0 or start < 0:
        return None
    body = text[start + len("<video_zoom>") : end].strip()
    if len(body) > MAX_CALL_CHARS:
        return ZoomCall(None, None, f"the call is longer than {MAX_CALL_CHARS} characters")
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        return ZoomCall(None, None, 'the call is not JSON: write {"segment": [start, end], "fps": n}')
    segment = data.get("segment") if isinstance(data, dict) else None
    if (
        not isinstance(segment, list)
        or len(segment) != 2
        or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in segment)
    ):
        return ZoomCall(None, None, 'the call names no segment: write "segment": [start, end] in seconds')
    s, e = float(segment[0]), float(segment[1])
    shown = f"[{_short(segment[0])}, {_short(segment[1])}]"
    if not (math.isfinite(s) and math.isfinite(e)) or e <= s:
        return ZoomCall(None, None, f"the segment {shown} has no length: end must be after start")
    if s < 0 or (duration is not None and e > duration + 1e-6):
        limit = f"{duration:.1f}" if duration is not None else "its end"
        return ZoomCall(None, None, f"the segment {shown} is not inside the video (0 to {limit} s)")
    # no rate given: the highest that fits the call's frame budget
    fps = data.get("fps", min(max_fps, (max_frames - 1) / (e - s)) if max_frames > 1 else 1e-9)
    if not isinstance(fps, int | float) or isinstance(fps, bool) or not math.isfinite(fps) or fps <= 0:
        return ZoomCall(None, None, "fps must be a positive number")
    fps = min(float(fps), max_fps)
    frames = math.floor((e - s) * fps) + 1
    if frames > max_frames:
        return ZoomCall(
            None,
            None,
            f"that is {frames} frames, more than {max_frames} a call: shorten the segment or lower fps",
        )
    return ZoomCall((s, e), fps)


def _short(value: object) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)[:12]
