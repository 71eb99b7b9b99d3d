"""A throwaway PostgreSQL server of a test's own (initdb in a temporary folder, a free port), which the test
may stop, start and restart without touching the shared test server."""

from __future__ import annotations

import contextlib
import glob
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian layout), if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


class PgServer:
    """Its data folder is made directly under /tmp: the 'postgres' user cannot enter pytest's own (0700,
    root's) temporary folders."""

    def __init__(self) -> None:
        bin_dir = pg_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (/usr/lib/postgresql/*/bin)")
        self.root = Path(tempfile.mkdtemp(prefix="videozero-pg-"))
        self.bin, self.data = bin_dir, self.root / "pgdata"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.data.mkdir(parents=True)
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root: its files belong to 'postgres'
            subprocess.run(["chown", "-R", "postgres:postgres", str(self.root)], check=True)
        self._run(f"{self.bin}/initdb -D {self.data} -U postgres --auth=trust -E UTF8")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, command: str) -> None:
        argv = (
            ["su", "postgres", "-s", "/bin/sh", "-c", command] if os.geteuid() == 0 else shlex.split(command)
        )
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)

    def _ctl(self, action: str, *extra: str) -> None:
        options = f'-o "-h 127.0.0.1 -p {self.port} -k /tmp -c fsync=off"'
        self._run(
            f"{self.bin}/pg_ctl -D {self.data} -l {self.data}/server.log -w -t 60 {options} {action} {' '.join(extra)}"
        )

    def start(self) -> None:
        self._ctl("start")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def remove(self) -> None:
        """Stop the server if it runs and delete its files."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
