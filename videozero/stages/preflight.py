"""Checks of a run's inputs before anything is stored or mined: the learner, the videos and the work
directory. A bad `--model` or `--videos` is refused in one sentence in a second, before the run's row,
its lease or a minute of mining exist (the CLI calls this before Prefect starts; the flow calls it again
for runs launched from the Prefect UI)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from videozero.errors import VideozeroError
from videozero.evidence.mine import collect_videos
from videozero.models.source import check_model_source, offline
from videozero.run_config import RunConfig, check_run_name

BUILT_LEARNERS = ("nano", "tiny-qwen")


def check_run_inputs(config: RunConfig) -> None:
    """Raise a VideozeroError naming the first input the run cannot use."""
    check_run_name(config.run_name)
    if config.learner.model not in BUILT_LEARNERS:
        check_model_source(config.learner.model, local_only=offline())
    if config.videos:
        files, problems = collect_videos(config.videos)
        if not files:
            missing = [p.path for p in problems if not Path(p.path).exists()]
            if len(missing) == len(problems):
                raise VideozeroError(f"none of the videos exist ({', '.join(missing[:3])}): check --videos.")
            raise VideozeroError((problems[0].error or "no video files found").rstrip(".") + " (--videos).")
        if not any(_readable(f) for f in files):
            raise VideozeroError(
                f"none of the {len(files)} files given by --videos can be read (e.g. {files[0]}): check "
                "their permissions."
            )
    for path in config.heldout_videos or []:
        if not Path(path).exists():
            raise VideozeroError(f"held-out video {path} does not exist: check --heldout-videos.")
    check_writable(config.workdir_path, "the work directory")
    if config.executor == "ray":
        check_ray_store(config.db or "sqlite")


def check_ray_store(url: str) -> None:
    """Ray workers write to the store from their own processes and nodes: it must be a server (PostgreSQL),
    and Ray must be installed."""
    import importlib.util

    if str(url).split(":", 1)[0].split("+", 1)[0].lower() == "sqlite":
        raise VideozeroError(
            "executor 'ray' needs a store every worker can reach, not SQLite: pass --db "
            "postgresql+psycopg://USER@HOST/DB (or set executor: local)."
        )
    if importlib.util.find_spec("ray") is None:
        from videozero.stages.fanout import RAY_MISSING

        raise VideozeroError(RAY_MISSING)


def check_shared_store(store) -> None:
    """`check_ray_store` for an open store."""
    check_ray_store(store.url.drivername)


def _readable(path: Path) -> bool:
    """Whether the first bytes of `path` can be read (a regular file the process may open)."""
    try:
        with open(path, "rb") as f:
            return len(f.read(16)) > 0
    except OSError:
        return False


def check_writable(directory: Path, what: str) -> None:
    """Create `directory` if needed and write a file in it; a VideozeroError naming it if that fails."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise VideozeroError(
            f"cannot write in {what} {directory} ({exc.strerror or exc}): choose another --workdir."
        ) from None
