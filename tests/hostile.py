"""Hostile inputs, run as a user would run them: each case is a real `videozero` command against its own copy
of a populated store. Every case must end in one clear error sentence (or a clean success), with no
traceback, the right exit status, and every row stored before it unchanged.

`tests/test_hostile.py` runs the cases; `python -m tests.hostile docs/reliability.md` runs them and writes
the table of what each one printed into that file (between the markers).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "videos" / "real"
SMALL_CLIP = REAL / "testvideo.mp4"
VFR_CLIP = REAL / "goldeneye-vfr-drop3.mp4"
BEGIN, END = "<!-- hostile-table:begin -->", "<!-- hostile-table:end -->"


@dataclass
class Ctx:
    """A case's own directory, its copy of the store, and the URL of a live PostgreSQL server if any."""

    dir: Path
    db_file: Path
    pg_url: str | None = None

    @property
    def db(self) -> str:
        return f"sqlite:///{self.db_file}"

    def path(self, name: str) -> Path:
        return self.dir / name


@dataclass
class Case:
    id: str
    area: str
    what: str
    argv: Callable[[Ctx], list[str]]
    expect: str  # "error" (exit 1 or 2, one sentence) or "ok" (exit 0)
    says: str  # a fragment the output must contain
    needs: str | None = None  # "pg": a live PostgreSQL server; "clips": the shared real clips
    extra_env: dict[str, str] = field(default_factory=dict)


# --- inputs the cases make -----------------------------------------------------------------------------


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _encode(path: Path, frames: int, size: tuple[int, int], codec: str = "mpeg4") -> Path:
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            img = np.full((size[1], size[0], 3), (i * 40) % 255, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _audio_only(path: Path) -> Path:
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        stream.layout = "mono"
        for i in range(20):
            samples = np.zeros((1, 1024), dtype=np.float32)
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _png_named_mp4(path: Path) -> Path:
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(path, format="PNG")
    return path


def _truncated(path: Path) -> Path:
    data = SMALL_CLIP.read_bytes()
    return _write(path, data[: len(data) // 3])


def _symlink_loop(ctx: Ctx) -> Path:
    folder = ctx.path("loops")
    folder.mkdir(exist_ok=True)
    (folder / "a.mp4").symlink_to(folder / "b.mp4")
    (folder / "b.mp4").symlink_to(folder / "a.mp4")
    (folder / "sub").mkdir()
    (folder / "sub" / "up").symlink_to(folder, target_is_directory=True)
    return folder


def _fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def _many_non_videos(folder: Path, n: int = 1000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"note_{i}.txt").write_text("not a video\n")
    return folder


def _yaml(ctx: Ctx, text: str) -> Path:
    return _write(ctx.path("config.yaml"), text.encode())


def _mine(ctx: Ctx, *videos: Path | str) -> list[str]:
    out = ["mine", "--workdir", str(ctx.path("work")), "--db", ctx.db]
    for v in videos:
        out += ["--videos", str(v)]
    return out


def _iterate(ctx: Ctx, *extra: str) -> list[str]:
    return ["iterate", "--preset", "smoke", "--workdir", str(ctx.path("work")), "--db", ctx.db, *extra]


def _config(ctx: Ctx, text: str) -> list[str]:
    """`iterate --config FILE` with no preset flag (a preset in the file is the file's)."""
    work = ["--workdir", str(ctx.path("work")), "--db", ctx.db]
    return ["iterate", *work, "--config", str(_yaml(ctx, text))]


# --- the cases -----------------------------------------------------------------------------------------

CASES: list[Case] = [
    # videos
    Case("video-zero-length", "videos", "an empty file named .mp4",
         lambda c: _mine(c, _write(c.path("empty.mp4"), b"")), "error", "no video could be mined"),
    Case("video-truncated", "videos", "the first third of a real MP4",
         lambda c: _mine(c, _truncated(c.path("cut.mp4"))), "error", "no video could be mined", needs="clips"),
    Case("video-text", "videos", "a text file named .mp4",
         lambda c: _mine(c, _write(c.path("notes.mp4"), b"hello\n" * 100)), "error", "no video could be mined"),
    Case("video-png", "videos", "a PNG image named .mp4",
         lambda c: _mine(c, _png_named_mp4(c.path("image.mp4"))), "error", "no video could be mined"),
    Case("video-markup-name", "videos", "a bad file whose name holds rich markup: [/bold] [red]",
         lambda c: _mine(c, _write(c.path("[/bold] [red]x.mp4"), b"junk")), "error", "[/bold] [red]x.mp4"),
    Case("video-audio-only", "videos", "an MP4 with an audio stream and no video",
         lambda c: _mine(c, _audio_only(c.path("audio.mp4"))), "error", "no video could be mined"),
    Case("video-one-frame", "videos", "a video of a single frame",
         lambda c: _mine(c, _encode(c.path("one.mp4"), 1, (64, 48))), "ok", "mined"),
    Case("video-vfr", "videos", "a real variable-frame-rate clip (frames dropped)",
         lambda c: _mine(c, VFR_CLIP), "ok", "1 mined", needs="clips"),
    Case("video-8k", "videos", "two frames of 7680x4320",
         lambda c: _mine(c, _encode(c.path("huge.mp4"), 2, (7680, 4320))), "ok", "mined"),
    Case("video-symlink-loop", "videos", "a folder with a symlink loop between two .mp4 names and to itself",
         lambda c: _mine(c, _symlink_loop(c)), "error", "holds no video files"),
    Case("video-fifo", "videos", "a named pipe called .mp4 (reading it would block)",
         lambda c: _mine(c, _fifo(c.path("pipe.mp4"))), "error", "is not a regular file"),
    Case("video-device", "videos", "a character device (/dev/zero)",
         lambda c: _mine(c, "/dev/zero"), "error", "is not a regular file"),
    Case("video-missing", "videos", "a path that does not exist",
         lambda c: _mine(c, c.path("nowhere.mp4")), "error", "none of the inputs exist"),
    Case("video-folder-non-videos", "videos", "a folder of 1,000 text files",
         lambda c: _mine(c, _many_non_videos(c.path("notes"))), "error", "holds no video files"),
    Case("video-folder-named-mp4", "videos", "an empty folder named clip.mp4",
         lambda c: _mine(c, c.path("clip.mp4").mkdir() or c.path("clip.mp4")), "error", "holds no video files"),
    Case("video-long-name", "videos", "a bad file with a 250-character name",
         lambda c: _mine(c, _write(c.path("v" * 246 + ".mp4"), b"junk")), "error", "no video could be mined"),
    Case("video-control-name", "videos", "a bad file whose name holds a newline and an escape character",
         lambda c: _mine(c, _write(c.path("a\nb\x1b[31m.mp4"), b"junk")), "error", "no video could be mined"),
    Case("iterate-videos-unusable", "videos", "iterate given only a folder without videos",
         lambda c: _iterate(c, "--videos", str(_many_non_videos(c.path("few"), 3))), "error",
         "holds no video files"),
    # store URLs and servers
    Case("db-bad-scheme", "store", "a URL of an unknown scheme",
         lambda c: ["qa", "list", "--db", "nosuchdb://x/y"], "error", "nosuchdb"),
    Case("db-not-a-url", "store", "a plain word as the URL",
         lambda c: ["qa", "list", "--db", "store.db"], "error", "store.db"),
    Case("db-unreachable", "store", "PostgreSQL on a port nothing listens on",
         lambda c: ["qa", "list", "--db", "postgresql+psycopg://u:p@127.0.0.1:9/none"], "error", "127.0.0.1"),
    Case("db-missing-database", "store", "a database that does not exist on a live PostgreSQL server",
         lambda c: ["qa", "list", "--db", c.pg_url.rsplit("/", 1)[0] + "/no_such_db_xyz"], "error",
         "no_such_db_xyz", needs="pg"),
    Case("db-directory", "store", "a directory as the SQLite file",
         lambda c: ["qa", "list", "--db", f"sqlite:///{c.dir}"], "error", "error:"),
    Case("db-not-sqlite", "store", "a text file as the SQLite file",
         lambda c: ["qa", "list", "--db", f"sqlite:///{_write(c.path('text.db'), b'not sqlite' * 100)}"],
         "error", "error:"),
    Case("db-missing-file", "store", "a read command on a store that does not exist",
         lambda c: ["qa", "list", "--db", f"sqlite:///{c.path('absent.db')}"], "error", "absent.db"),
    Case("db-read-only", "store", "mining into a store opened read-only (a SQLite URL with mode=ro)",
         lambda c: ["mine", "--workdir", str(c.path("work")), "--db", f"sqlite:///file:{c.db_file}?mode=ro&uri=true",
                    "--videos", str(_encode(c.path("ro.mp4"), 4, (64, 48)))], "error", "error:"),
    Case("db-read-only-reads", "store", "a read command on a read-only SQLite URL",
         lambda c: ["qa", "list", "--db", f"sqlite:///file:{c.db_file}?mode=ro&uri=true"], "ok", "demo"),
    # configs and flags
    Case("config-bad-yaml", "config", "a YAML file with an unclosed list",
         lambda c: _config(c, "rounds: [1, 2\n"), "error", "is not valid YAML"),
    Case("config-not-mapping", "config", "a YAML file holding a list",
         lambda c: _config(c, "- 1\n- 2\n"), "error", "must hold a mapping"),
    Case("config-wrong-type", "config", "rounds: two",
         lambda c: _config(c, "rounds: two\n"), "error", "invalid setting rounds"),
    Case("config-negative-budget", "config", "solver.steps: -1",
         lambda c: _config(c, "solver:\n  steps: -1\n"), "error", "invalid setting solver.steps"),
    Case("config-absurd-budget", "config", "rounds: 1000000000",
         lambda c: _config(c, "rounds: 1000000000\n"), "error", "invalid setting rounds"),
    Case("config-absurd-tokens", "config", "eval.max_new_tokens: 10000000",
         lambda c: _config(c, "eval:\n  max_new_tokens: 10000000\n"), "error", "invalid setting eval.max_new_tokens"),
    Case("config-bad-fraction", "config", "heldout_fraction: 1.5",
         lambda c: _config(c, "heldout_fraction: 1.5\n"), "error", "invalid setting heldout_fraction"),
    Case("config-unknown-key", "config", "a misspelt top-level key (round: 3)",
         lambda c: _config(c, "round: 3\n"), "error", "unknown setting round"),
    Case("config-unknown-nested-key", "config", "a misspelt nested key (solver.stepz)",
         lambda c: _config(c, "solver:\n  stepz: 3\n"), "error", "unknown setting solver.stepz"),
    Case("config-bad-zoom-mode", "config", "eval.zoom.mode: sideways",
         lambda c: _config(c, "eval:\n  zoom:\n    mode: sideways\n"), "error", "invalid setting eval.zoom.mode"),
    Case("config-bad-tool-turns", "config", "solver.tool.max_turns: 0",
         lambda c: _config(c, "solver:\n  tool:\n    max_turns: 0\n"), "error", "invalid setting solver.tool.max_turns"),
    Case("config-unknown-preset-file", "config", "preset: huge in the file",
         lambda c: _config(c, "preset: huge\n"), "error", "unknown preset 'huge'"),
    Case("config-unknown-preset-flag", "config", "--preset huge",
         lambda c: ["iterate", "--preset", "huge", "--workdir", str(c.path("work"))], "error", "unknown preset 'huge'"),
    Case("config-missing-file", "config", "--config naming no file",
         lambda c: _iterate(c, "--config", str(c.path("none.yaml"))), "error", "cannot read the config file"),
    Case("config-directory", "config", "--config naming a directory",
         lambda c: _iterate(c, "--config", str(c.dir)), "error", "cannot read the config file"),
    Case("flag-rounds-zero", "config", "--rounds 0",
         lambda c: _iterate(c, "--rounds", "0"), "error", "--rounds"),
    Case("flag-model-missing", "config", "--model naming no directory",
         lambda c: _iterate(c, "--model", str(c.path("no-model"))), "error", "does not exist"),
    Case("flag-model-not-a-model", "config", "--model naming a directory without config.json",
         lambda c: _iterate(c, "--model", str(c.dir)), "error", "has no config.json"),
    Case("flag-workdir-is-file", "config", "--workdir naming a file",
         lambda c: ["iterate", "--preset", "smoke", "--workdir", str(_write(c.path("wd-file"), b"x"))], "error",
         "error:"),
    # names
    Case("name-traversal", "names", "--run-name ../../../escaped",
         lambda c: _iterate(c, "--run-name", "../../../escaped"), "error", "is not allowed"),
    Case("name-absolute", "names", "--run-name /tmp/x",
         lambda c: _iterate(c, "--run-name", "/tmp/x"), "error", "is not allowed"),
    Case("name-slash", "names", "--run-name a/b",
         lambda c: _iterate(c, "--run-name", "a/b"), "error", "is not allowed"),
    Case("name-dotdot", "names", "--run-name ..",
         lambda c: _iterate(c, "--run-name", ".."), "error", "is not allowed"),
    Case("name-nul", "names", "a run name with a NUL byte (from a config file)",
         lambda c: _config(c, 'run_name: "a\\0b"\n'), "error", "is not allowed"),
    Case("name-control", "names", "a run name with an escape sequence",
         lambda c: _iterate(c, "--run-name", "red\x1b[31mrun"), "error", "is not allowed"),
    Case("name-huge", "names", "a run name of 10,000 characters",
         lambda c: _iterate(c, "--run-name", "x" * 10_000), "error", "is not allowed"),
    Case("name-sql", "names", "a run name holding SQL",
         lambda c: _iterate(c, "--run-name", "x'); DROP TABLE runs;--"), "error", "is not allowed"),
    Case("name-sql-lookup", "names", "qa list --run with SQL in it",
         lambda c: ["qa", "list", "--db", c.db, "--run", "demo' OR '1'='1"], "error", "no run named"),
    Case("name-like-wildcards", "names", "qa list --search with LIKE wildcards",
         lambda c: ["qa", "list", "--db", c.db, "--search", "%_%"], "ok", "0 of 0 questions"),
    Case("name-show-bad-id", "names", "qa show of an id that is not a number",
         lambda c: ["qa", "show", "abc", "--db", c.db], "error", "Invalid value for 'ID'"),
    Case("name-show-missing-id", "names", "qa show of an id that does not exist",
         lambda c: ["qa", "show", "999999", "--db", c.db], "error", "999999"),
    # exports
    Case("export-bad-extension", "exports", "--out x.csv",
         lambda c: ["qa", "export", "--db", c.db, "--out", str(c.path("x.csv"))], "error", "name the file .jsonl"),
    Case("export-unwritable", "exports", "--out /proc/x.jsonl",
         lambda c: ["qa", "export", "--db", c.db, "--out", "/proc/x.jsonl"], "error", "cannot write the export"),
    Case("export-directory", "exports", "--out naming a directory called x.jsonl",
         lambda c: ["qa", "export", "--db", c.db, "--out", str(c.path("x.jsonl").mkdir() or c.path("x.jsonl"))],
         "error", "is a directory"),
    Case("export-bad-shape", "exports", "--shape bogus",
         lambda c: ["qa", "export", "--db", c.db, "--out", str(c.path("x.jsonl")), "--shape", "bogus"], "error",
         "bogus"),
    Case("export-new-folder", "exports", "--out in a folder that does not exist yet",
         lambda c: ["qa", "export", "--db", c.db, "--out", str(c.path("new/dir/x.jsonl"))], "ok", "wrote"),
    # evaluation inputs
    Case("eval-missing-annotations", "evaluation", "--annotations naming no file",
         lambda c: ["eval", "--model", "base", "--db", c.db, "--benchmark", "asl_grounding", "--annotations",
                    str(c.path("none.jsonl"))], "error", "does not exist"),
    Case("eval-malformed-annotations", "evaluation", "an annotation file that is not JSON lines",
         lambda c: ["eval", "--model", "base", "--db", c.db, "--benchmark", "asl_grounding", "--annotations",
                    str(_write(c.path("items.jsonl"), b"{not json\n"))], "error", "items.jsonl"),
    Case("eval-missing-videos", "evaluation", "--videos naming no folder",
         lambda c: ["eval", "--model", "base", "--db", c.db, "--benchmark", "asl_grounding", "--annotations",
                    str(_write(c.path("items.jsonl"), b"{}\n")), "--videos", str(c.path("none"))], "error",
         "is not a folder"),
    Case("eval-unknown-benchmark", "evaluation", "--benchmark nosuch",
         lambda c: ["eval", "--model", "base", "--db", c.db, "--benchmark", "nosuch"], "error", "unknown benchmark"),
    Case("eval-bad-round", "evaluation", "--model round:x",
         lambda c: ["eval", "--model", "round:x", "--db", c.db], "error", "is not a round reference"),
    Case("eval-missing-model", "evaluation", "--model naming no directory",
         lambda c: ["eval", "--model", str(c.path("nomodel")), "--db", c.db], "error", "does not exist"),
    Case("eval-unknown-run", "evaluation", "--run naming no run",
         lambda c: ["eval", "--model", "base", "--db", c.db, "--run", "nosuch"], "error", "nosuch"),
    Case("eval-unknown-zoom", "evaluation", "--zoom sideways",
         lambda c: ["eval", "--model", "base", "--db", c.db, "--zoom", "sideways"], "error", "is not a zoom mode"),
]  # fmt: skip


# --- running a case ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    case: Case
    returncode: int
    output: str
    changed: list[str]
    seconds: float = 0.0

    @property
    def message(self) -> str:
        """The line that says what happened: the error sentence, else the output's last line."""
        lines = [line.strip() for line in self.output.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error:") or "Invalid value" in line]
        return (errors or lines or [""])[-1]

    def problems(self) -> list[str]:
        out = []
        if self.case.expect == "error" and self.returncode not in (1, 2):
            out.append(f"exit status {self.returncode}, expected an error (1 or 2)")
        if self.case.expect == "ok" and self.returncode != 0:
            out.append(f"exit status {self.returncode}, expected 0")
        if "Traceback" in self.output:
            out.append("a traceback was printed")
        said = self.case.says.lower()
        if said not in " ".join(self.output.split()).lower() and said not in self.output.lower():
            out.append(f"the output does not say {self.case.says!r}")
        if self.changed:
            out.append(f"stored rows changed: {self.changed[:3]}")
        return out


def template_store(path: Path) -> Path:
    """A SQLite store with one populated run ('demo'), made once per session."""
    from store import open_store
    from tests.sample_store import populate

    if not path.exists():
        store = open_store(f"sqlite:///{path}")
        populate(store)
        store.dispose()
    return path


def _rows(db_file: Path) -> dict[str, dict[int, tuple]]:
    con = sqlite3.connect(db_file)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: {r[0]: r[1:] for r in con.execute(f'SELECT rowid, * FROM "{t}"')} for t in tables}
    finally:
        con.close()


def _changed(before: dict[str, dict[int, tuple]], after: dict[str, dict[int, tuple]]) -> list[str]:
    """Rows stored before that are gone or different now (new rows are allowed: a failed mining is recorded)."""
    out = []
    for table, rows in before.items():
        now = after.get(table, {})
        out += [f"{table}#{rowid}" for rowid, row in rows.items() if now.get(rowid) != row]
    return out


def run_case(
    case: Case, root: Path, template: Path, pg_url: str | None = None, in_process: bool = False
) -> Outcome:
    """Run one case in `root/<id>` on its own copy of `template`: as a `videozero` process, or (the
    suite's way, without a process start per case) through the same entry point, `videozero.cli.app.main`,
    in this process with its output captured and its exit status taken from SystemExit."""
    here = root / case.id
    here.mkdir(parents=True, exist_ok=True)
    db_file = here / "store.db"
    shutil.copy(template, db_file)
    ctx = Ctx(here, db_file, pg_url)
    argv = case.argv(ctx)
    before = _rows(db_file)
    started = time.perf_counter()
    if in_process:
        code, output = _in_process(argv, here)
    else:
        env = {
            **os.environ,
            "COLUMNS": "200",
            "NO_COLOR": "1",
            "PREFECT_HOME": str(here / "prefect-home"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            **case.extra_env,
        }
        env.pop("VIDEOZERO_DB", None)
        proc = subprocess.run(
            [sys.executable, "-m", "videozero.cli.app", *argv],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=here,
            stdin=subprocess.DEVNULL,
        )
        code, output = proc.returncode, proc.stdout + proc.stderr
    seconds = time.perf_counter() - started
    return Outcome(case, code, output, _changed(before, _rows(db_file)), seconds)


def _in_process(argv: list[str], cwd: Path) -> tuple[int, str]:
    """`videozero ARGV` through `main()` in this process (one case at a time: it changes directory)."""
    import io
    import traceback
    from contextlib import redirect_stderr, redirect_stdout

    from videozero.cli.app import main
    from videozero.cli.common import console, err_console

    buffer, saved_argv, saved_cwd = io.StringIO(), sys.argv, os.getcwd()
    saved_widths = console._width, err_console._width
    console.width = err_console.width = 200  # as the processes' COLUMNS=200
    saved_db = os.environ.pop("VIDEOZERO_DB", None)
    sys.argv, code = ["videozero", *argv], 0
    os.chdir(cwd)
    try:
        with redirect_stdout(buffer), redirect_stderr(buffer):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # what a user would see as a traceback
        buffer.write(traceback.format_exc())
        code = 1
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        console._width, err_console._width = saved_widths
        if saved_db is not None:
            os.environ["VIDEOZERO_DB"] = saved_db
    return code, buffer.getvalue()


def available(case: Case, pg_url: str | None) -> str | None:
    """Why the case cannot run here (None: it can)."""
    if case.needs == "pg" and not pg_url:
        return "no PostgreSQL server (VIDEOZERO_TEST_PG_URL unset)"
    if case.needs == "clips" and not SMALL_CLIP.exists():
        return f"{REAL} is absent"
    return None


def markdown_table(outcomes: list[Outcome], skipped: dict[str, str], root: Path | None = None) -> str:
    """The table of docs/reliability.md; paths under the cases' temporary `root` are shown from `<case>/`."""
    lines = [
        "| case | input | expected | exit | what the user sees |",
        "|---|---|---|---:|---|",
    ]
    by_id = {o.case.id: o for o in outcomes}
    for case in CASES:
        if case.id in skipped:
            lines.append(
                f"| {case.id} | {_cell(case.what)} | {case.expect} | - | not run here: {skipped[case.id]} |"
            )
            continue
        o = by_id[case.id]
        message = o.message.replace(f"{root}/cases/{case.id}", "<case>") if root is not None else o.message
        lines.append(
            f"| {case.id} | {_cell(case.what)} | {case.expect} | {o.returncode} | {_cell(message[:220])} |"
        )
    return "\n".join(lines)


def _cell(text: str) -> str:
    shown = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)
    return shown.replace("|", "\\|")


def main(doc: str) -> int:
    """Run every case and write the table into `doc` between the markers; non-zero if a case failed."""
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    pg_url = os.environ.get("VIDEOZERO_TEST_PG_URL")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        template = template_store(root / "template.db")
        skipped = {c.id: why for c in CASES if (why := available(c, pg_url))}
        todo = [c for c in CASES if c.id not in skipped]
        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(lambda c: run_case(c, root / "cases", template, pg_url), todo))
        table = markdown_table(outcomes, skipped, root)
    failed = [(o.case.id, p) for o in outcomes for p in o.problems()]
    for case_id, problem in failed:
        print(f"{case_id}: {problem}")
    for o in sorted(outcomes, key=lambda o: -o.seconds)[:8]:
        print(f"{o.seconds:5.1f} s  {o.case.id}")
    path = Path(doc)
    text = path.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{table}\n{END}{tail}")
    print(f"{len(outcomes)} cases run, {len(skipped)} not run here, {len(failed)} problems; table in {doc}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else str(ROOT / "docs" / "reliability.md")))
