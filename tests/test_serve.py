"""`videozero serve` against a real local Prefect server: the iterate deployment is triggered through the
server's API, runs a round, and its artifacts are there."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.cli import ROOT
from videozero.video.samples import generated_scenes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(url: str, path: str, body: dict | None = None, retries: int = 5) -> object:
    """One call to the server's API; a 503 (the server's database busy, e.g. SQLite locked while the
    served flow writes) is retried with backoff, as Prefect's own client does."""
    req = urllib.request.Request(
        f"{url}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
        method="POST" if body is not None else "GET",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        if e.code != 503 or not retries:
            raise
    time.sleep(2 ** (5 - min(retries, 5)))
    return _api(url, path, body, retries - 1)


def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process exited with {proc.returncode}")
        try:
            found = predicate()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_served_iterate_deployment_runs_a_round_and_publishes_artifacts(tmp_path):
    """`serve --port P` with no server configured starts one on P whose UI talks to P's API; a run launched
    through the iterate deployment completes with its artifacts; SIGTERM then stops serve and its server
    within a few seconds."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    for key in ("PREFECT_API_KEY", "PREFECT_API_URL"):
        env.pop(key, None)
    server = None  # serve starts and stops its own
    serve = None
    try:
        serve = subprocess.Popen(
            [sys.executable, "-m", "videozero.cli.app", "serve", "--port", str(port), "--workdir", str(tmp_path),
             "--preset", "smoke"],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        deployments = _wait(
            lambda: (
                [d for d in _api(url, "/deployments/filter", {}) if d["name"] in ("iterate", "mine", "eval")]
                if len(_api(url, "/deployments/filter", {})) >= 3
                else None
            ),
            180,
            "the served deployments",
            serve,
        )
        assert {d["name"] for d in deployments} == {"iterate", "mine", "eval"}
        iterate = next(d for d in deployments if d["name"] == "iterate")
        # a run on the user's own videos, as the UI form takes them: one to train on, one held out
        train, held = (str(v) for v in generated_scenes(tmp_path / "mine", "scene", 2))
        config = {
            "preset": "smoke", "rounds": 1, "run_name": "served", "workdir": str(tmp_path),
            "videos": [train], "heldout_videos": [held],
        }  # fmt: skip
        run = _api(url, f"/deployments/{iterate['id']}/create_flow_run", {"parameters": {"config": config}})
        final = _wait(
            lambda: (
                (r := _api(url, f"/flow_runs/{run['id']}"))["state_type"]
                in ("COMPLETED", "FAILED", "CRASHED")
                and r
            ),
            600,
            "the iterate flow run",
            serve,
        )
        assert final["state_type"] == "COMPLETED", final["state"]
        artifacts = _api(url, "/artifacts/filter", {"artifacts": {"key": {"like_": "videozero-served"}}})
        keys = {a["key"] for a in artifacts}
        assert {"videozero-served-round-0", "videozero-served-round-0-summary"} <= keys, keys
        table = next(a for a in artifacts if a["key"] == "videozero-served-round-0")
        assert table["type"] == "table" and "family" in str(table["data"])
        assert (tmp_path / "runs" / "served" / "metrics.png").exists()
        assert _api(f"http://127.0.0.1:{port}", "/ui-settings")["api_url"] == url  # the UI finds this API
        serve.send_signal(15)
        stopped = time.monotonic()
        out, _ = serve.communicate(timeout=30)
        assert time.monotonic() - stopped < 12 and "Traceback" not in out, out[-2000:]
        with pytest.raises(OSError):  # its server went with it
            urllib.request.urlopen(f"{url}/health", timeout=2)
    finally:
        for proc in (serve, server):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, 15)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
