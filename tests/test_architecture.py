"""The layering of the package, as pyproject.toml's [tool.importlinter] contracts state it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_layers_and_store_access_hold() -> None:
    """cli/flows -> reports -> stages -> run_config -> evaluation -> questioner -> solver -> models/evidence
    -> video -> rewards/answer format, with no package cycle, and the store read and written only by the
    stages, the reports and the CLI (apart from the listed modules still to move)."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "2 kept, 0 broken" in done.stdout


def test_the_store_exceptions_only_shrink() -> None:
    """The modules still allowed to touch the store are listed, and the list is short."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (store_rule,) = [c for c in config["contracts"] if c["type"] == "forbidden"]
    assert store_rule["forbidden_modules"] == ["store"]
    assert len(store_rule.get("ignore_imports", [])) <= 7
