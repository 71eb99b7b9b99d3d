"""A real two-node Ray cluster on 127.0.0.1 for the scale tests: a head and a second node, each its own
raylet with one CPU, started with `ray start` inside a network namespace of the test's own, where the
loopback is the only interface (so every Ray address is 127.0.0.1). Commands that use the cluster run in
the namespace too (`argv`); the PostgreSQL store is reached through its Unix socket, which namespaces do
not separate. The second node is started with a pause point armed (`faults.pause_point`): when the test
creates `pause_flag`, its workers stop inside the named task, so the test can kill the node there."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy.engine import make_url

from videozero.faults import PAUSE_ENV, PAUSE_FLAG_ENV

PORT = 6380


def can_run() -> str | None:
    """Why a cluster cannot be started here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    ray = Path(sys.executable).parent / "ray"
    if not ray.exists():
        return "Ray is not installed (pip install 'videozero[ray]')"
    return None


def socket_url(tcp_url: str) -> str:
    """The same PostgreSQL database through the server's Unix socket in /tmp (reachable from a namespace)."""
    url = make_url(tcp_url)
    return url.set(
        host=None, port=None, query={"host": "/tmp", "port": str(url.port or 5432)}
    ).render_as_string(hide_password=False)


class RayCluster:
    """Head and second node in namespace `vzray<pid>`; `stop` ends both and removes the namespace."""

    def __init__(self, root: Path, pause_at: str = "verify:task") -> None:
        self.ns = f"vzray{os.getpid()}"
        self.temp = Path(f"/tmp/vzray{os.getpid()}")  # Ray's socket paths must stay short
        self.pause_flag = root / "pause"
        self.address = f"127.0.0.1:{PORT}"
        self.ray = str(Path(sys.executable).parent / "ray")
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        subprocess.run(["ip", "netns", "exec", self.ns, "ip", "link", "set", "lo", "up"], check=True)
        common = ["--num-cpus", "1", "--disable-usage-stats"]
        # token authentication off on every process of this loopback-only cluster, whatever
        # ~/.ray holds (a head and a node must agree on it)
        self.client_env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
        env = os.environ | self.client_env | {"OMP_NUM_THREADS": "1"}
        self._start(
            [
                "--head",
                "--port",
                str(PORT),
                "--include-dashboard=false",
                "--temp-dir",
                str(self.temp),
                *common,
            ],
            env,
        )
        self.worker_env = env | {PAUSE_ENV: pause_at, PAUSE_FLAG_ENV: str(self.pause_flag)}
        self._start(["--address", self.address, *common], self.worker_env)

    def _start(self, args: list[str], env: dict[str, str]) -> None:
        proc = subprocess.run(
            self.argv([self.ray, "start", *args]), env=env, capture_output=True, text=True, timeout=120
        )
        if proc.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start {' '.join(args)} failed: {proc.stderr[-2000:]}")

    def argv(self, command: list[str]) -> list[str]:
        """`command` run inside the cluster's namespace."""
        return ["ip", "netns", "exec", self.ns, *command]

    def second_node_pids(self) -> list[int]:
        """The processes of the second node (its raylet, agents and workers): those carrying its flag."""
        marker = f"{PAUSE_FLAG_ENV}={self.pause_flag}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    pids.append(int(entry.name))
            except OSError:
                continue
        return [p for p in pids if p != os.getpid()]

    def kill_second_node(self) -> int:
        """SIGKILL every process of the second node, as a machine lost; returns how many."""
        pids = self.second_node_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def wait_paused(self, timeout: float) -> list[Path]:
        """The markers of workers holding at the pause point, once there is one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = list(self.pause_flag.parent.glob(f"{self.pause_flag.name}.*"))
            if found:
                return found
            time.sleep(0.2)
        return []

    def stop(self) -> None:
        env = os.environ | self.client_env
        subprocess.run(self.argv([self.ray, "stop", "--force"]), capture_output=True, timeout=120, env=env)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        shutil.rmtree(self.temp, ignore_errors=True)
