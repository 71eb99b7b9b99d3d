"""The layering of the package, as pyproject.toml's [tool.importlinter] contracts state it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_layers_and_store_access_hold() -> None:
    """cli/flows -> stages -> reports -> run_config -> evaluation -> questioner -> solver -> models/evidence
    -> video -> rewards/answer format, with no package cycle, the store read and written only by the
    stages and the CLI, and SQLAlchemy imported in store/ only."""
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout


def test_the_store_rule_has_no_exceptions() -> None:
    """No module outside the stages and the CLI is let off the store rule."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (store_rule,) = [c for c in config["contracts"] if c.get("forbidden_modules") == ["store"]]
    assert store_rule["forbidden_modules"] == ["store"]
    assert store_rule.get("ignore_imports", []) == []
    assert {"videozero.questioner", "videozero.reports", "flows"} <= set(store_rule["source_modules"])


def test_every_module_of_the_package_has_a_layer() -> None:
    """A new top-level module or package of videozero must be placed in the layers (else the contract
    would not see it)."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    placed = {name.strip() for layer in layers for name in layer.replace(":", "|").split("|")}
    package = ROOT / "videozero"
    found = {
        f"videozero.{p.stem if p.is_file() else p.name}"
        for p in package.iterdir()
        if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())
    }
    assert found - {"videozero.assets"} <= placed, sorted(found - placed)
