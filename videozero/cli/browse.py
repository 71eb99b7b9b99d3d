"""`videozero browse`: the QA browser, a read-only web app over a store, served on this machine."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Annotated

import typer

from store import Store
from store.browse import run_workdirs, sqlite_folder
from store.engine import open_read_only
from videozero.cli.common import DbOption, console, resolve_db
from videozero.errors import VideozeroError

LOOPBACK = "127.0.0.1"


def cache_roots(store: Store, workdirs: list[str], extra: list[Path]) -> list[Path]:
    """Where frame caches may be: the --cache folders, `<folder of a SQLite store>/cache` (the default
    layout puts the store in the work directory) and each run's configured work directory's `cache`
    (absolute ones only: a relative one was relative to wherever the run was started)."""
    roots = list(extra)
    folder = sqlite_folder(store.url)
    if folder is not None:
        roots.append(folder / "cache")
    roots += [Path(w).expanduser() / "cache" for w in workdirs if Path(w).expanduser().is_absolute()]
    seen, out = set(), []
    for root in roots:
        if root.is_dir() and root.resolve() not in seen:
            seen.add(root.resolve())
            out.append(root)
    return out


def check_port(host: str, port: int) -> None:
    """Refuse, in one sentence, a port that is taken or a host this machine cannot listen on."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: a port whose last
        try:  # connections are closing is free, one a program listens on is not
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise VideozeroError(f"Port {port} on {host} is in use: pass another with --port.") from None
            raise VideozeroError(
                f"Cannot listen on {host}:{port} ({exc.strerror}): pass --host {LOOPBACK} or another --port."
            ) from None


def browse(
    db: DbOption = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to serve on.")] = 8765,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (127.0.0.1: this machine only).")
    ] = LOOPBACK,
    cache: Annotated[
        list[Path] | None,
        typer.Option(
            "--cache", help="A frame-cache folder (<workdir>/cache) to cut thumbnails from; repeatable."
        ),
    ] = None,
) -> None:
    """Browse the QA store in a web browser: runs, questions, each question's evidence and rollouts on the
    video's timeline, checkpoints side by side. Read-only."""
    import uvicorn

    from videozero.browse.app import create_app

    for folder in cache or []:
        if not folder.is_dir():
            raise VideozeroError(f"--cache {folder} is not a folder: give a work directory's cache folder.")
    check_port(host, port)
    store = open_read_only(resolve_db(db))
    with store.session() as s:
        workdirs = run_workdirs(s)
    roots = cache_roots(store, workdirs, list(cache or []))
    app = create_app(store, roots)
    console.print(f"Browsing {store} (read-only) at http://{host}:{port}/ — Ctrl+C stops.")
    if not roots:
        console.print("No frame cache found: thumbnails are cut from the video files (pass --cache DIR).")
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        store.dispose()
