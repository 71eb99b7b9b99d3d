"""The QA browser (`videozero browse`): its pages in a real headless Chromium (Debian's, driven by
Playwright) against the real command serving a real store; the files it may read; the read-only store."""

from __future__ import annotations

import http.client
import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert

from store import Run, StoreError, open_store
from store.engine import open_read_only
from tests.browse_store import (
    CHOSEN,
    EVIDENCE,
    FAMILY_ACCURACY,
    HOSTILE_TEXT,
    RAW_OUTPUT,
    REJECTED,
    ROLLOUTS,
    BrowseStore,
    build,
)
from tests.cli import ROOT, assert_one_sentence_error, videozero
from videozero.browse.media import FileGate, Refused
from videozero.browse.timeline import build_timeline, x_of
from videozero.browse.views import filter_from_params
from videozero.errors import VideozeroError

CHROMIUM = Path(os.environ.get("VIDEOZERO_CHROMIUM", "/usr/bin/chromium"))
# Debian's Chromium headless as root on a machine with no outside network (see docs/browse.md)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(os.environ.get("VIDEOZERO_SCREENSHOTS", ROOT / "build" / "screenshots"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrowseStore]:
    workdir = tmp_path_factory.mktemp("browse")
    url = f"sqlite:///{workdir / 'store.db'}"
    store = open_store(url)
    try:
        yield build(store, url, workdir)
    finally:
        store.dispose()


@pytest.fixture(scope="module")
def server(demo: BrowseStore) -> Iterator[str]:
    """`videozero browse` on the demo store, as a user starts it; its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "videozero.cli.app", "browse", "--db", demo.url, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/")
            if conn.getresponse().status == 200:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"videozero browse did not serve: {out}\n{err}")
        time.sleep(0.3)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless, driven by Playwright (skipped without it; failed under
    VIDEOZERO_REQUIRE_BROWSER, which CI sets)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not CHROMIUM.exists():
        why = f"Playwright and Chromium ({CHROMIUM}) are needed: `apt-get install chromium` and the dev extra"
        if os.environ.get("VIDEOZERO_REQUIRE_BROWSER"):
            pytest.fail(why)
        pytest.skip(why)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    """A fresh tab that records script errors, failed loads and dialogs (there should be none)."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    tab.problems = []
    tab.on("pageerror", lambda exc: tab.problems.append(f"script error: {exc}"))
    tab.on("console", lambda msg: tab.problems.append(msg.text) if msg.type == "error" else None)
    tab.on("dialog", lambda dialog: (tab.problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    yield tab
    context.close()


def images_loaded(tab) -> list[int]:  # type: ignore[no-untyped-def]
    """naturalWidth of every image on the page once each has loaded or failed."""
    tab.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=60_000)
    return tab.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")


def test_pages_load(page, server: str, demo: BrowseStore) -> None:  # type: ignore[no-untyped-def]
    response = page.goto(f"{server}/")
    assert response.status == 200
    assert page.inner_text("#runs").count(demo.run_name) == 1

    page.click(f"text={demo.run_name}")
    assert page.inner_text("#run-name") == demo.run_name
    stages = page.inner_text("#round-0 table.stages")
    assert "question" in stages and "12.5" in stages and "30.2" in stages
    assert "level raised: accuracy 0.80" in page.inner_text("#round-0 table.decisions")
    assert all(w > 0 for w in images_loaded(page)), "the run's plot did not load"

    response = page.goto(f"{server}/runs/{demo.run_id}/checkpoints")
    assert response.status == 200
    header = page.eval_on_selector_all("#comparison th", "ths => ths.map(t => t.innerText)")
    assert header[4:] == ["warmup", "round 0"]  # the base checkpoint has no figures: no column
    for family in ("grounding", "ordering"):
        cells = page.eval_on_selector_all(
            f"#comparison tr[data-family='{family}'][data-figure='accuracy'] td",
            "tds => tds.map(t => t.innerText)",
        )
        assert cells[0] == family and cells[2] == "4"
        assert cells[3] != "-", "the constant baseline is missing"
        for label, cell in zip(header[4:], cells[4:], strict=True):
            value = FAMILY_ACCURACY[label][family]  # ± the binomial standard error over its 4 questions
            assert cell.startswith(f"{value:.3f} ± {(value * (1 - value) / 4) ** 0.5:.3f}"), (
                family,
                label,
                cell,
            )

    response = page.goto(f"{server}/questions?run={demo.run_name}")
    assert response.status == 200
    assert "1-10 of 10 questions" in page.inner_text("#summary")
    page.select_option("select[name=family]", "grounding")
    page.select_option("select[name=split]", "train")
    page.click("button[type=submit]")
    rows = page.eval_on_selector_all("#questions tbody tr td:first-child", "tds => tds.map(t => t.innerText)")
    assert rows == [str(demo.question_id)]
    assert page.problems == []


def test_question_page_timeline_and_frames(page, server: str, demo: BrowseStore) -> None:  # type: ignore[no-untyped-def]
    response = page.goto(f"{server}/questions/{demo.question_id}")
    assert response.status == 200
    assert page.inner_text("#question-text") == "When is the red square on screen?"
    assert page.inner_text("#answer") == "A" and page.inner_text("#verdict") == "accepted"
    assert "0.750" in page.inner_text("#rewards")  # r_dep

    # the evidence, where it is on the drawn timeline (screen pixels of the lane's track)
    track = page.locator("#timeline g[data-kind='evidence'] rect.track").bounding_box()
    bar = page.locator("#timeline rect.bar[data-kind='evidence']")
    assert bar.count() == 1
    assert (float(bar.get_attribute("data-start")), float(bar.get_attribute("data-end"))) == EVIDENCE
    box = bar.bounding_box()
    expected_x = track["x"] + EVIDENCE[0] / demo.duration * track["width"]
    assert abs(box["x"] - expected_x) < 1.5
    assert abs(box["width"] - (EVIDENCE[1] - EVIDENCE[0]) / demo.duration * track["width"]) < 1.5
    assert page.locator("#timeline rect.bar[data-kind='shot']").count() >= 1  # mined, not written

    # every mode's rollouts: one bar per sample at its span, coloured by whether it was right
    for mode, samples in ROLLOUTS.items():
        bars = page.locator(f"#timeline rect.bar[data-kind='rollout'][data-mode='{mode}']")
        assert bars.count() == len(samples), mode
        drawn = sorted(
            (int(bars.nth(i).get_attribute("data-sample")), float(bars.nth(i).get_attribute("data-start")),
             float(bars.nth(i).get_attribute("data-end")), bars.nth(i).get_attribute("class"))
            for i in range(bars.count())
        )  # fmt: skip
        assert drawn == [(i, s, e, f"bar {'correct' if ok else 'wrong'}") for i, (s, e), _, ok in samples], (
            mode
        )
        start = bars.first.bounding_box()["x"]
        assert abs(start - (track["x"] + drawn[0][1] / demo.duration * track["width"])) < 1.5, mode

    # thumbnails at the evidence (start, middle, end) and the query image, cut from the frame cache
    widths = images_loaded(page)
    assert len(widths) == 4 and all(0 < w <= 240 for w in widths), widths
    assert page.locator("#query-stills img").count() == 1
    assert any((demo.workdir / "cache" / "thumbnails").rglob("*.jpg")), "thumbnails were not kept"

    # an attempt's raw output, loaded when its row is opened, shown as text
    row = page.locator(f"details[data-src='/attempts/{demo.attempt_id}/output']")
    assert row.locator("pre").inner_text() == ""
    row.locator("summary").click()
    page.wait_for_function(
        f"document.querySelector(\"details[data-src='/attempts/{demo.attempt_id}/output'] pre\").textContent.length > 0"
    )
    assert row.locator("pre").inner_text() == RAW_OUTPUT
    assert row.locator("pre b").count() == 0

    # the question's preference pairs, their responses shown as text
    assert page.inner_text("#pair-chosen") == CHOSEN
    assert page.locator("#pairs tbody tr").all_inner_texts() == [f"grounding\tshift\t{REJECTED}"]
    assert page.locator("evidence, answer, think").count() == 0

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "question-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    assert page.problems == []


HOSTILE_FILTER = "<img src=x onerror=alert(1)>%_' OR '1'='1; --"


def test_hostile_filters_are_shown_literally(page, server: str, demo: BrowseStore) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{server}/questions")
    page.fill("#search", HOSTILE_FILTER)
    page.click("button[type=submit]")
    assert page.input_value("#search") == HOSTILE_FILTER
    assert page.inner_text("#searched") == HOSTILE_FILTER
    assert "No question matches" in page.inner_text("#summary")
    assert page.locator("main img").count() == 0

    page.fill("#search", HOSTILE_TEXT)  # matches the question whose text is itself hostile
    page.click("button[type=submit]")
    cells = page.eval_on_selector_all("#questions td.text", "tds => tds.map(t => t.innerText)")
    assert cells == [HOSTILE_TEXT]
    assert page.locator("#questions script").count() == 0

    response = page.goto(f"{server}/questions?run=%3Cb%3Enope%3C/b%3E&level_min=x")
    assert response.status == 400
    assert page.inner_text("#error") == "The level_min filter 'x' is not a whole number: give one, e.g. 2."
    response = page.goto(f"{server}/questions?run=%3Cb%3Enope%3C/b%3E")
    assert response.status == 400
    assert page.inner_text("#error").startswith("No run named '<b>nope</b>'")
    assert [p for p in page.problems if "status of 400" not in p] == []  # the two refused filters
    page.problems.clear()
    page.goto(f"{server}/questions/{demo.hostile_id}")
    assert page.inner_text("#question-text") == HOSTILE_TEXT
    assert (
        "solver consensus <i>2,1</i> · evidence 0.00-1.00 s · consensus span 1.00-2.00 s"
        in page.inner_text("p:has(#answer)")
    )
    assert "<b>bold</b>" in page.inner_text("#rewards")
    assert page.locator("#timeline rect.bar[data-kind='consensus']").count() == 1
    assert page.problems == []


def _raw_get(base: str, path: str) -> tuple[int, bytes]:
    """GET `path` sent exactly as written (no client-side normalisation of dots or escapes)."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.putrequest("GET", path, skip_accept_encoding=True)
    conn.endheaders()
    response = conn.getresponse()
    return response.status, response.read()


def test_no_file_outside_the_videos_and_cache_can_be_read(server: str, demo: BrowseStore) -> None:
    secret = demo.workdir / "secret.txt"
    secret.write_text("SECRET-CONTENT")
    (demo.workdir / "cache" / "leak.jpg").symlink_to(secret)
    for path in (
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/static//etc/passwd",
        "/static/..%5c..%5csecret.txt",
        f"/videos/{demo.video_id}/frames/..%2f..%2fsecret.txt.jpg",
        f"/videos/{demo.video_id}/frames/-1.jpg",
        f"/videos/{demo.video_id}/frames/1e9999.jpg",
        "/videos/..%2f..%2fetc%2fpasswd/frames/0.jpg",
        f"/videos/{demo.video_id + 99}/frames/0.jpg",
        "/attempts/../../secret.txt/output",
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/cache/leak.jpg",
        "/thumbnails/leak.jpg",
    ):
        status, body = _raw_get(server, path)
        assert status in (400, 404), (path, status)
        assert b"SECRET-CONTENT" not in body and b"root:x:0" not in body, path
    status, body = _raw_get(server, f"/videos/{demo.broken_video_id}/frames/0.jpg")  # stored, unreadable
    assert status == 404 and b"broken.mp4" in body
    status, body = _raw_get(server, f"/videos/{demo.video_id}/frames/3000.jpg")
    assert status == 200 and body[:2] == b"\xff\xd8"  # a JPEG of the video itself


def test_file_gate(tmp_path: Path) -> None:
    videos, cache, outside = tmp_path / "videos", tmp_path / "cache", tmp_path / "outside"
    for folder in (videos, cache, outside):
        folder.mkdir()
    video = videos / "a.mp4"
    video.write_bytes(b"v")
    (videos / "b.mp4").write_bytes(b"v")
    (cache / "x.npz").write_bytes(b"c")
    (outside / "secret").write_text("s")
    (cache / "link").symlink_to(outside / "secret")
    gate = FileGate([str(video)], [cache, tmp_path / "missing"])
    assert gate.check(video) == video.resolve()
    assert gate.check(cache / "x.npz") == (cache / "x.npz").resolve()
    assert gate.check(videos / ".." / "videos" / "a.mp4") == video.resolve()
    for refused in (
        videos / "b.mp4",
        cache / ".." / "outside" / "secret",
        cache / "link",
        Path("/etc/passwd"),
        videos,
    ):
        with pytest.raises(Refused):
            gate.check(refused)
    assert gate.roots == [cache.resolve()]


def test_store_is_opened_read_only(db_url: str) -> None:
    open_store(db_url).dispose()
    store = open_read_only(db_url)
    try:
        with pytest.raises(Exception, match=r"(?i)read.only|readonly"), store.session() as s:
            s.execute(insert(Run).values(name="written", config={}))
        with store.session() as s:
            assert s.query(Run).count() == 0
    finally:
        store.dispose()


def test_postgres_store_pages(pg_url: str, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from videozero.browse.app import create_app

    writer = open_store(pg_url)
    demo = build(writer, pg_url, tmp_path)
    writer.dispose()
    store = open_read_only(pg_url)
    try:
        client = TestClient(create_app(store, [tmp_path / "cache"]))
        assert demo.run_name in client.get("/").text
        page = client.get(f"/questions/{demo.question_id}")
        assert page.status_code == 200 and 'data-kind="evidence"' in page.text
        found = client.get("/questions", params={"search": HOSTILE_TEXT})
        assert found.status_code == 200 and "1-1 of 1 questions" in found.text
        assert "&lt;script&gt;alert" in found.text and "<script>alert" not in found.text
        assert client.get(f"/runs/{demo.run_id}/checkpoints").status_code == 200
        for params, sentence in (
            ({"search": "a\x00b"}, "NUL character"),
            ({"level_max": "9" * 30}, "out of range"),
        ):
            refused = client.get("/questions", params=params)
            assert refused.status_code == 400 and sentence in refused.text
        frame = client.get(f"/videos/{demo.video_id}/frames/2500.jpg")
        assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"
    finally:
        store.dispose()


def test_browse_bad_input(tmp_path: Path, demo: BrowseStore) -> None:
    proc = videozero("browse", "--db", f"sqlite:///{tmp_path / 'none.db'}", timeout=120)
    assert_one_sentence_error(proc, "No store at")
    proc = videozero("browse", "--db", demo.url, "--cache", str(tmp_path / "nowhere"), timeout=120)
    assert_one_sentence_error(proc, "is not a folder")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = videozero("browse", "--db", demo.url, "--port", str(port), timeout=120)
    assert_one_sentence_error(proc, f"Port {port} on 127.0.0.1 is in use: pass another with --port.")


def test_timeline_ignores_malformed_spans() -> None:
    attempts = [
        {"checkpoint_id": 1, "checkpoint": "warmup", "mode": "full", "sample_index": 0, "format_ok": True,
         "correct": True, "parsed_answer": "A", "parsed_spans": [[1, 2], ["x", 3], [1, 2, 3], "ab", [float("nan"), 1], [5, 4]]},
        {"checkpoint_id": 1, "checkpoint": "warmup", "mode": "blind", "sample_index": 0, "format_ok": False,
         "correct": None, "parsed_answer": None, "parsed_spans": None},
    ]  # fmt: skip
    t = build_timeline(10.0, [], [[2, 3]], None, attempts)
    full = next(lane for lane in t.lanes if lane.mode == "full")
    assert [(b.start, b.end) for b in full.bars] == [(1.0, 2.0), (4.0, 5.0)]
    blind = next(lane for lane in t.lanes if lane.mode == "blind")
    assert blind.bars == [] and blind.note == "1 of 1 gave no span"
    assert x_of(-5, 10) == x_of(0, 10) == 160.0 and x_of(50, 10) == x_of(10, 10) == 980.0


def test_filters_from_the_address() -> None:
    flt = filter_from_params({"run": "a'b", "round": "2", "search": "50%", "family": ""})
    assert (flt.run, flt.round, flt.text, flt.family) == ("a'b", 2, "50%", None)
    for params, fragment in (
        ({"round": "two"}, "The round filter 'two' is not a whole number"),
        ({"status": "done"}, "Unknown status 'done'"),
        ({"level_min": "3", "level_max": "1"}, "The difficulty range is empty"),
        ({"search": "x" * 501}, "longer than 500 characters"),
        ({"level_max": "9" * 30}, "The level_max filter 9999"),
        ({"search": "a\x00b"}, "The search filter holds a NUL character: remove it."),
    ):
        with pytest.raises((VideozeroError, StoreError), match=fragment):
            filter_from_params(params)


def test_thumbnails_from_the_video_file_without_a_cache(demo: BrowseStore, tmp_path: Path) -> None:
    from PIL import Image

    from videozero.browse.media import Thumbnails

    thumbs = Thumbnails(FileGate([str(demo.video_path)], []))
    data = thumbs.jpeg(str(demo.video_path), None, 3.0)
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG" and image.width <= 240
    assert thumbs.jpeg(str(demo.video_path), None, 3.0) is data  # kept
    gone = tmp_path / "gone.mp4"
    with pytest.raises(Refused, match="not there any more"):
        Thumbnails(FileGate([str(gone)], [])).jpeg(str(gone), None, 1.0)
    with pytest.raises(Refused, match="is not a file of this store"):
        Thumbnails(FileGate([], [])).jpeg(str(demo.video_path), "f" * 64, 1.0)


def test_serves_this_machine_only(server: str) -> None:
    import psutil

    port = int(server.rsplit(":", 1)[1])
    listening = {
        c.laddr.ip
        for c in psutil.net_connections(kind="inet")
        if c.status == "LISTEN" and c.laddr.port == port
    }
    assert listening == {"127.0.0.1"}
