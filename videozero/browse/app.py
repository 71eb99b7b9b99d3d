"""The QA browser's web app: runs, questions, one question against its video, and checkpoints side by
side, read from a store opened read-only. Pages are rendered on the server (Jinja templates, inline
SVG); the only script fetches an attempt's raw output when its row is opened.

`create_app(store, cache_roots)` builds the app; `videozero browse` serves it on 127.0.0.1.
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi import Path as FastAPIPath
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from store import Store, StoreError
from store.browse import (
    attempt_output,
    filter_choices,
    question_attempts,
    question_row,
    report_version,
    round_question_counts,
    round_rows,
    run_row,
    runs_overview,
    task_summary,
    video_file,
    video_segments,
)
from store.preferences import question_preferences
from store.queries import count_questions, list_questions
from videozero.browse.media import FileGate, Thumbnails
from videozero.browse.timeline import build_timeline, spans_of
from videozero.browse.views import attempt_groups, comparison_rows, filter_from_params, labelled, round_view
from videozero.errors import VideozeroError
from videozero.reports.comparison import Report, report_plot
from videozero.stages.report import run_report
from videozero.video.query_images import query_times

HERE = Path(__file__).parent
PAGE_SIZE = 50
CHOICES_TTL_S = 30.0  # how long the filter form's run and family lists are reused
MAX_MS = 10**9  # a frame time in milliseconds (11 days of video)


class PageError(Exception):
    """A page that cannot be shown: its status and the one sentence that says why."""

    def __init__(self, status: int, sentence: str) -> None:
        super().__init__(sentence)
        self.status = status
        self.sentence = sentence


def create_app(store: Store, cache_roots: Sequence[Path] = ()) -> FastAPI:
    """The browser over `store` (opened read-only by the caller); frames are looked for under
    `cache_roots` (the runs' `<workdir>/cache` folders)."""
    app = FastAPI(title="videozero browser", docs_url=None, redoc_url=None, openapi_url=None)
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["num"] = _num
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    gate = FileGate([], cache_roots)  # video files are allowed as their rows are read
    thumbnails = Thumbnails(gate)
    plots: dict[tuple[int, str], bytes] = {}
    choices: dict[str, Any] = {"at": -CHOICES_TTL_S, "value": {}}
    plot_lock = threading.Lock()
    reports: dict[tuple[int, Any], Report] = {}
    report_lock = threading.Lock()
    app.state.store, app.state.gate = store, gate

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("store_name", str(store))
        return templates.TemplateResponse(request, name, context, status_code=status)

    @app.exception_handler(PageError)
    async def _page_error(request: Request, exc: PageError) -> HTMLResponse:
        return page(request, "error.html", exc.status, sentence=exc.sentence)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return page(request, "error.html", 404, sentence="No such page in this browser.")
        return page(request, "error.html", exc.status_code, sentence=str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> HTMLResponse:
        where = ".".join(str(p) for p in (exc.errors()[0].get("loc") or [])[1:]) if exc.errors() else ""
        return page(
            request, "error.html", 404, sentence=f"No such page: {where or 'the address'} is not valid."
        )

    def report_of(run_id: int, name: str) -> Report:
        """The run's report (every checkpoint's figures, the constants, the paired changes), computed
        again only when the run's metrics, checkpoints or attempts changed."""
        with store.session() as s:
            version = (run_id, report_version(s, run_id))
        with report_lock:
            if version in reports:
                return reports[version]
        report = run_report(store, run_id, name)
        with report_lock:
            for key in [k for k in reports if k[0] == run_id]:
                del reports[key]
            reports[version] = report
        return report

    def run_or_404(run_id: int) -> dict[str, Any]:
        with store.session() as s:
            row = run_row(s, run_id)
        if row is None:
            raise PageError(404, f"No run with id {run_id}: the runs page lists them.")
        return row

    @app.get("/", response_class=HTMLResponse)
    def runs(request: Request) -> HTMLResponse:
        with store.session() as s:
            rows = runs_overview(s)
        return page(request, "runs.html", runs=rows)

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    def run(request: Request, run_id: int) -> HTMLResponse:
        row = run_or_404(run_id)
        with store.session() as s:
            rounds = round_rows(s, run_id)
            counts = round_question_counts(s, run_id)
            tasks = task_summary(s, run_id)
        report = report_of(run_id, row["name"])
        views = [round_view(r, counts, report) for r in rounds]
        return page(request, "run.html", run=row, rounds=views, tasks=tasks, report=report)

    @app.get("/runs/{run_id}/plot.png")
    def plot(run_id: int) -> Response:
        report = report_of(run_id, run_or_404(run_id)["name"])
        key = (run_id, repr(sorted(report.values.items())))
        with plot_lock:
            data = plots.get(key)
        if data is None:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    data = report_plot(report, Path(tmp) / "plot.png").read_bytes()
                except VideozeroError as exc:
                    raise PageError(404, str(exc)) from None
            with plot_lock:
                plots.clear()
                plots[key] = data
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-cache"})

    @app.get("/runs/{run_id}/checkpoints", response_class=HTMLResponse)
    def checkpoints(request: Request, run_id: int) -> HTMLResponse:
        row = run_or_404(run_id)
        report = report_of(run_id, row["name"])
        return page(request, "checkpoints.html", run=row, report=report, rows=comparison_rows(report))

    @app.get("/questions", response_class=HTMLResponse)
    def questions(request: Request) -> HTMLResponse:
        params = {k: v for k, v in request.query_params.items() if k != "page"}
        try:
            number = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            number = 1
        with store.session() as s:
            if time.monotonic() - choices["at"] > CHOICES_TTL_S:  # a scan of every question: not per page
                choices.update(at=time.monotonic(), value=filter_choices(s))
            try:
                flt = filter_from_params(params)
                total = count_questions(s, flt)
                pages = max(1, math.ceil(total / PAGE_SIZE))
                number = min(number, pages)
                rows = list_questions(s, flt, limit=PAGE_SIZE, offset=(number - 1) * PAGE_SIZE)
                error = None
            except (StoreError, VideozeroError) as exc:
                rows, total, pages, error = [], 0, 1, str(exc)
        kept = {k: v for k, v in params.items() if v != ""}

        def link(n: int) -> str:
            return "/questions?" + urlencode({**kept, "page": n})

        return page(
            request,
            "questions.html",
            400 if error else 200,
            rows=rows,
            total=total,
            number=number,
            pages=pages,
            params=params,
            choices=choices["value"],
            error=error,
            prev_link=link(number - 1) if number > 1 else None,
            next_link=link(number + 1) if number < pages else None,
            first=(number - 1) * PAGE_SIZE + 1,
        )

    @app.get("/questions/{question_id}", response_class=HTMLResponse)
    def question(request: Request, question_id: int) -> HTMLResponse:
        with store.session() as s:
            row = question_row(s, question_id)
            if row is None:
                raise PageError(404, f"No question with id {question_id}: the questions page lists them.")
            attempts = labelled(question_attempts(s, question_id))
            segments = video_segments(s, row["video_id"])
            pairs = question_preferences(s, question_id)
        timeline = build_timeline(
            row["duration_s"], segments, row["evidence"], row["consensus_evidence"], attempts
        )
        evidence = spans_of(row["evidence"])  # model-written rows are untrusted: pairs of numbers only
        stills = [(f"evidence {s_:.1f}-{e:.1f} s", t) for s_, e in evidence for t in (s_, (s_ + e) / 2, e)]
        return page(
            request,
            "question.html",
            q=row,
            evidence=evidence,
            consensus=spans_of(row["consensus_evidence"]),
            timeline=timeline,
            groups=attempt_groups(attempts),
            attempts=attempts,
            evidence_stills=[_still(row["video_id"], label, t) for label, t in stills],
            query_stills=[_still(row["video_id"], label, t) for label, t in query_times(row["spec"] or {})],
            letters=[chr(ord("A") + i) for i in range(len(row["options"] or []))],
            pairs=pairs,
        )

    @app.get("/attempts/{attempt_id}/output")
    def output(attempt_id: int) -> JSONResponse:
        with store.session() as s:
            row = attempt_output(s, attempt_id)
        if row is None:
            return JSONResponse({"error": f"No attempt with id {attempt_id}."}, status_code=404)
        return JSONResponse({"raw_output": row["raw_output"], "turns": row["turns"]})

    @app.get("/videos/{video_id}/frames/{ms}.jpg")
    def frame(video_id: int, ms: Annotated[int, FastAPIPath(ge=0, le=MAX_MS)]) -> Response:
        with store.session() as s:
            video = video_file(s, video_id)
        if video is None:
            raise PageError(404, f"No video with id {video_id}.")
        gate.allow(video.path)
        try:
            data = thumbnails.jpeg(video.path, video.content_hash, ms / 1000.0)
        except VideozeroError as exc:  # refused, gone, or not a readable video
            raise PageError(404, str(exc)) from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})

    return app


def _still(video_id: int, label: str, t: float) -> dict[str, Any]:
    return {"label": label, "t": t, "url": f"/videos/{video_id}/frames/{max(0, round(t * 1000))}.jpg"}


def _num(value: Any, digits: int = 2) -> str:
    """A figure for a cell: '-' for none, integers as they are, floats rounded."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


__all__ = ["PageError", "create_app"]
