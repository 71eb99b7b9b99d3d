"""`videozero iterate`: run (or resume) rounds of the loop through the Prefect flow; `videozero serve`:
serve the iterate, mine and eval deployments so rounds can be launched from the Prefect UI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from videozero.cli.common import DbOption, ExecutorOpt, RayAddressOpt, console, executor_from, workdir_default
from videozero.errors import VideozeroError


def prefect_defaults() -> None:
    """Settings that make Prefect's temporary local server dependable on a small machine (kept when the
    user set them)."""
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")


def iterate(
    rounds: Annotated[
        int | None,
        typer.Option("--rounds", min=1, max=100, help="rounds to reach, default 2 (a resumed run continues)"),
    ] = None,
    videos: Annotated[
        list[Path] | None,
        typer.Option("--videos", help="videos or folders (repeatable); default: embedded samples"),
    ] = None,
    heldout_videos: Annotated[
        list[Path] | None,
        typer.Option(
            "--heldout-videos",
            help="videos or folders always held out (repeatable); default: the embedded held-out scenes "
            "when no --videos are given",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="learner: nano, tiny-qwen, a checkpoint directory or a hub id"),
    ] = None,
    run_name: Annotated[
        str | None,
        typer.Option("--run-name", help="run name, default 'default'; the same name resumes the run"),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="YAML file of settings (see docs/iterate.md)", show_default=False),
    ] = None,
    preset: Annotated[
        str, typer.Option("--preset", help="default (nano) or smoke (tiny-qwen, minimal budgets)")
    ] = "default",
    db: DbOption = None,
    workdir: Annotated[
        Path | None,
        typer.Option(help="work directory (store, caches, checkpoints); default ./videozero_work"),
    ] = None,
    executor: ExecutorOpt = None,
    ray_address: RayAddressOpt = None,
) -> None:
    """Run the Video-Zero loop for --rounds rounds: mine, propose and verify questions, train the solver
    and the questioner, evaluate on held-out videos, update the curriculum. Killed runs resume."""
    from videozero.run_config import load_run_config

    if preset not in ("default", "smoke"):
        raise VideozeroError(f"unknown preset {preset!r}: use default or smoke.")
    overrides: dict = {
        "rounds": rounds,
        "run_name": run_name,
        "workdir": str(workdir) if workdir else None,
        "db": db,
        "videos": [str(v) for v in videos] if videos else None,
        "heldout_videos": [str(v) for v in heldout_videos] if heldout_videos else None,
    }
    if executor is not None or ray_address is not None:
        chosen = executor_from(executor, ray_address)
        overrides |= {"executor": chosen.kind, "ray_address": chosen.address}
    config = load_run_config(preset, config_file, **overrides)
    if workdir is None and config.workdir == type(config).model_fields["workdir"].default:
        config.workdir = str(workdir_default())  # $VIDEOZERO_WORKDIR
    config.db = config.db or os.environ.get("VIDEOZERO_DB")
    if model:
        config.learner.model = model
    from store.runs import check_claimable, run_by_name
    from videozero.stages.preflight import check_run_inputs
    from videozero.stages.run import open_run_store, rounds_done

    check_run_inputs(config)  # before the run's row exists or anything is mined

    store = open_run_store(config)
    try:
        check_claimable(store, config.run_name)  # a clear error before Prefect starts
        with store.session() as s:
            run = run_by_name(s, config.run_name)
            finished_id = run.id if run is not None and run.status == "finished" else None
        finished = finished_id is not None and rounds_done(store, finished_id) >= config.rounds
    finally:
        store.dispose()
    if finished:  # nothing left to run: the tables, without starting Prefect
        console.print(f"run {config.run_name!r} has finished its {config.rounds} rounds: nothing to run.")
        show_run(config, None)
        return
    prefect_defaults()
    # The console shows videozero's own bars, tables and one closing sentence; Prefect's run logs (a
    # failed task's traceback included) still reach its UI and its database.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    started = time.perf_counter()
    from prefect.exceptions import TerminationSignal

    from flows.iterate import iterate as iterate_flow
    from videozero.progress import console_bars

    _stop_on_sigterm()  # as Ctrl-C: the run records 'stopped' and releases its lease
    try:
        with console_bars(console):
            iterate_flow(config)
    except TerminationSignal:  # SIGTERM, as Prefect's engine reports it: stopped like Ctrl-C
        raise KeyboardInterrupt from None
    except Exception as exc:
        from store import StoreError

        if isinstance(exc, VideozeroError | StoreError):
            raise
        log = write_error_log(config.run_dir, exc)
        raise VideozeroError(
            f"the run stopped: {type(exc).__name__}: {exc} (the traceback is in {log}; rerun the same "
            "command to resume)."
        ) from exc
    show_run(config, time.perf_counter() - started)


def write_error_log(run_dir: Path, exc: BaseException) -> Path:
    """Append `exc`'s traceback to `<run_dir>/errors.log` (the console gets one sentence); its path."""
    import datetime
    import traceback

    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "errors.log"
    with log.open("a", encoding="utf-8") as f:
        f.write(f"--- {datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}\n")
        f.write("".join(traceback.format_exception(exc)))
    return log


def show_run(config, seconds: float | None) -> None:
    """Every round's closing table, the checkpoints side by side, and where the plot is."""
    from videozero.reports.coverage import coverage_table
    from videozero.reports.summary import learner_line, round_table
    from videozero.stages.report import (
        comparison_table,
        learner_writes,
        round_summary,
        run_plot,
        video_coverage,
    )
    from videozero.stages.run import open_run_store, run_id_of

    store = open_run_store(config)
    try:
        run_id = run_id_of(store, config.run_name)
        line = learner_line(learner_writes(store, run_id))
        if line:
            console.print(line)
        for r in range(config.rounds):
            console.print(round_table(round_summary(store, run_id, r)))
        missing = coverage_table(
            video_coverage(store, run_id, config.questioner.families, config.workdir_path / "cache")
        )
        if missing is not None:
            console.print(missing)
    finally:
        store.dispose()
    console.print(comparison_table(config))
    png = run_plot(config)
    took = f" in {seconds / 60:.1f} min" if seconds is not None else ""
    console.print(f"run {config.run_name!r}: {config.rounds} rounds{took}" + (f"; plot {png}" if png else ""))


def _server_healthy(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def start_local_server(port: int, timeout: float = 120.0) -> subprocess.Popen:
    """`prefect server start` on 127.0.0.1:`port`, waited for until healthy."""
    url = f"http://127.0.0.1:{port}/api"
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # the UI in the browser talks to this server's API, not the default port's
        env={**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_API_URL": url},
        start_new_session=True,  # stopped as a group: the server and the workers it starts
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise VideozeroError(
                    f"the Prefect server exited at start (code {proc.returncode}): is port {port} in use?"
                )
            if _server_healthy(url):
                return proc
            time.sleep(1)
    except BaseException:
        stop_server(proc)
        raise
    stop_server(proc)
    raise VideozeroError(f"the Prefect server did not answer on {url} within {timeout:.0f} s.")


def stop_server(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """Stop the local server's process group: SIGTERM, then SIGKILL after `grace` seconds."""
    import signal

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _stop_on_sigterm() -> None:
    """SIGTERM stops `serve` as Ctrl-C does; if shutting down hangs, the process exits after 10 s."""
    import signal
    import threading

    def interrupt(signum, frame) -> None:
        watchdog = threading.Timer(10.0, os._exit, args=(143,))
        watchdog.daemon = True
        watchdog.start()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def serve(
    workdir: Annotated[
        Path | None, typer.Option(help="work directory the deployments use by default")
    ] = None,
    db: DbOption = None,
    port: Annotated[
        int, typer.Option("--port", help="port of the local server started when none is configured")
    ] = 4200,
    preset: Annotated[
        str, typer.Option("--preset", help="the iterate deployment's default preset")
    ] = "default",
) -> None:
    """Serve the iterate, mine and eval deployments against the configured Prefect server, starting one
    on 127.0.0.1 when PREFECT_API_URL is not set; launch runs from the UI. Stop with Ctrl-C."""
    from videozero.run_config import load_run_config

    prefect_defaults()
    wd = str(workdir or workdir_default())
    config = load_run_config(preset, workdir=wd, db=db)
    _stop_on_sigterm()
    server = None
    try:
        if not os.environ.get("PREFECT_API_URL"):
            server = start_local_server(port)
            os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
            console.print(f"Prefect server started: http://127.0.0.1:{port}")
        import logging

        from prefect import serve as prefect_serve

        # on SIGTERM Prefect's runner exits from its own handler and asyncio logs the connections it
        # cancels as errors with their tracebacks: nothing a user can act on
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)

        from flows.eval import EvalParams, evaluate
        from flows.iterate import iterate as iterate_flow
        from flows.mine import MineParams, mine

        prefect_serve(
            iterate_flow.to_deployment(name="iterate", parameters={"config": config.model_dump(mode="json")}),
            mine.to_deployment(
                name="mine", parameters={"params": MineParams(workdir=wd, db=db).model_dump()}
            ),
            evaluate.to_deployment(
                name="eval", parameters={"params": EvalParams(workdir=wd, db=db).model_dump()}
            ),
        )
    except KeyboardInterrupt:
        console.print("serve stopped.")
    finally:
        if server is not None:
            stop_server(server)
