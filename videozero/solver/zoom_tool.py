"""VideoZoomer's multi-turn temporal zoom as a tool: the model sees an overview, may call
`<video_zoom>{"segment": [s, e], "fps": n}</video_zoom>`, generation stops at the closing tag, the tool's
turn (the frames of that span with their times, or a short error) is appended, and the model goes on,
for at most `max_turns` model turns; the last is told to answer without zooming.

A call is read defensively (`answer_format.parse_zoom_call`): malformed JSON, a span outside the video or
of no length, or more frames than a call may have each get a one-sentence error in the tool's turn and a
penalty on the reward, never an exception. A trajectory trains as one row per model turn: each row's
prompt holds the earlier turns and the tool's replies (`Request.turns`), its completion only that turn's
tokens. By causality this is the same loss as one sequence with the tool's tokens masked out (verl's
response mask), at the cost of running each earlier turn again as prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from videozero.answer_format import (
    ANSWER_END,
    ZOOM_END,
    ZoomCall,
    parse_zoom_call,
    render_answer,
    render_zoom_call,
)
from videozero.models.engines.base import GenerationEngine, Sample, SamplingParams
from videozero.models.request import Request, ToolTurn
from videozero.rewards import Span
from videozero.video.inputs import VideoInput
from videozero.video.zoom import usable_spans, zoom_view
from videozero.zoom_config import ZoomToolSettings

TOOL_INSTRUCTION = (
    'To look closer, write <think>why</think><video_zoom>{"segment": [start, end]}</video_zoom> (with "fps": n '
    "if you like) and you will be shown that span's frames; then answer."
)
LAST_TURN = " This is your last turn: answer now, without zooming."

ZoomSource = Callable[[], VideoInput | None]  # the dense frames a zoom is cut from, made when first asked


@dataclass
class Trajectory:
    """One multi-turn answer: the model's turns (samples), the tool's replies between them, and a record
    of each call (the span and rate asked for, the frames shown, or the error)."""

    request: Request
    segments: list[Sample] = field(default_factory=list)
    replies: list[ToolTurn] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    hit_limit: bool = False

    @property
    def final(self) -> Sample:
        return self.segments[-1]

    @property
    def errors(self) -> int:
        return sum(1 for c in self.calls if c.get("error"))

    def rows(self) -> list[tuple[Request, list[int]]]:
        """(prompt, completion tokens) of each model turn: what GRPO trains on, the tool's turns in the
        prompts only."""
        return [(self.request_at(k), list(s.token_ids)) for k, s in enumerate(self.segments)]

    def request_at(self, k: int) -> Request:
        """The prompt of model turn `k`: the first request and the k exchanges before it (the first request
        itself for turn 0, so that a group's first turns share their prompt)."""
        if k == 0:
            return self.request
        return replace(self.request, turns=(*self.request.turns, *self.replies[:k]))

    def record(self) -> list[dict[str, Any]]:
        """The turns as stored with an attempt: each model turn's text and, after a call, what the tool did."""
        out = []
        for k, sample in enumerate(self.segments):
            turn: dict[str, Any] = {"said": sample.text}
            if k < len(self.calls):
                turn["call"] = self.calls[k]
            out.append(turn)
        return out


def tool_request(request: Request) -> Request:
    """`request` with the tool's instruction as its system line."""
    system = f"{request.system} {TOOL_INSTRUCTION}" if request.system else TOOL_INSTRUCTION
    return replace(request, system=system)


def tool_reply(
    call: ZoomCall, source: VideoInput | None, duration: float, settings: ZoomToolSettings, last: bool
) -> tuple[ToolTurn, dict[str, Any]]:
    """The tool's turn for one call (the zoomed frames, or the error) and its record."""
    notice = LAST_TURN if last else ""
    if not call.ok or call.segment is None:
        return ToolTurn("", f"Zoom refused: {call.error}.{notice}"), {"error": call.error}
    if source is None:
        error = "this question is asked without the video, so there is nothing to zoom into"
        return ToolTurn("", f"Zoom refused: {error}.{notice}"), {"error": error}
    view = zoom_view(source, [call.segment], duration, settings.max_frames, call.fps)
    s, e = call.segment
    text = f"Frames of {s:.1f} to {e:.1f} s, at {', '.join(f'{t:.1f}' for t in view.times)} s.{notice}"
    record = {"segment": [s, e], "fps": call.fps, "frames": view.times, "fallback": view.fallback}
    return ToolTurn("", text, view.video), record


def run_tool(
    engine: GenerationEngine,
    requests: Sequence[Request],
    durations: Sequence[float],
    sources: Sequence[ZoomSource],
    params: SamplingParams,
    settings: ZoomToolSettings,
) -> list[list[Trajectory]]:
    """`params.n` multi-turn answers to each request (given with the tool's instruction, `tool_request`):
    the first turns sampled together, then every trajectory that called the tool continued with one sample
    until it answers or reaches `settings.max_turns`."""
    stop = tuple(dict.fromkeys((*params.stop, ANSWER_END, ZOOM_END)))
    first = engine.generate(list(requests), replace(params, stop=stop))
    trajectories = [
        [Trajectory(request, [sample]) for sample in samples]
        for request, samples in zip(requests, first, strict=True)
    ]
    dense: dict[int, VideoInput | None] = {}
    for turn in range(1, settings.max_turns + 1):
        pending: list[tuple[int, Trajectory]] = []
        for i, group in enumerate(trajectories):
            for t in group:
                if len(t.segments) != turn:
                    continue
                call = parse_zoom_call(t.final.text, durations[i], settings.max_frames, settings.max_fps)
                if call is None:
                    continue
                if turn >= settings.max_turns:
                    t.hit_limit = True
                    t.calls.append({"error": f"no turns left ({settings.max_turns} at most)"})
                    continue
                if i not in dense:
                    dense[i] = sources[i]()
                reply, record = tool_reply(
                    call, dense[i], durations[i], settings, last=turn + 1 >= settings.max_turns
                )
                t.replies.append(ToolTurn(t.final.text, reply.reply, reply.video))
                t.calls.append(record)
                pending.append((i, t))
        if not pending:
            break
        seed = None if params.seed is None else params.seed + 7919 * turn
        nexts = engine.generate(
            [t.request_at(turn) for _, t in pending], replace(params, n=1, stop=stop, seed=seed)
        )
        for (_, t), samples in zip(pending, nexts, strict=True):
            t.segments.append(samples[0])
    return trajectories


def warmup_rows(
    request: Request,
    evidence: Sequence[Span],
    answer: str,
    duration: float,
    source: VideoInput | None,
    settings: ZoomToolSettings,
    think: str = "",
    margin_s: float = 1.0,
) -> list[tuple[Request, str]]:
    """The tool format as supervised targets (so that a small model can use the tool at all): a zoom into
    the known evidence (its hull widened by `margin_s` each side; no fps, so the tool shows as many frames
    as the call's budget allows and a copied rate can never ask for too many), the tool's reply, then the
    answer; as two (prompt, target) rows. [] without evidence or video."""
    spans = usable_spans(evidence, duration)
    video = source if source is not None else request.video
    if not spans or video is None:
        return []
    s = max(0.0, spans[0][0] - margin_s)
    e = min(duration, spans[-1][1] + margin_s) if duration > 0 else spans[-1][1] + margin_s
    call_text = render_zoom_call((s, e))
    call = parse_zoom_call(call_text, duration, settings.max_frames, settings.max_fps)
    if call is None or not call.ok:
        return []
    first = tool_request(request)
    reply, _ = tool_reply(call, video, duration, settings, last=settings.max_turns <= 2)
    then = first.then(ToolTurn(call_text, reply.reply, reply.video))
    return [(first, call_text), (then, render_answer(evidence, answer, think))]
