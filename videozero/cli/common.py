"""Options and helpers every `videozero` subcommand shares: where the store lives, how errors look."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from store import Store, default_url, open_store
from videozero.errors import VideozeroError
from videozero.workdir import workdir_default

# Paths, names, questions and model output are printed as text: a "[/x]" in them is never rich markup
# (our own styling uses rich.text.Text or `markup=True` with the data escaped).
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)


def resolve_db(db: str | None, workdir: Path | None = None) -> str:
    """The store URL: --db, else $VIDEOZERO_DB, else a SQLite file in the work directory."""
    return db or os.environ.get("VIDEOZERO_DB") or default_url(workdir or workdir_default())


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="SQLAlchemy URL of the store (default: $VIDEOZERO_DB, else sqlite:///<workdir>/store.db).",
        show_default=False,
    ),
]


def open_existing(db: str | None) -> Store:
    """Open a store that must already exist (read commands never create an empty one)."""
    return open_store(resolve_db(db), create=False)


class ExecutorKind(StrEnum):
    local = "local"
    ray = "ray"


ExecutorOpt = Annotated[
    ExecutorKind | None,
    typer.Option(
        "--executor",
        help="where mining, verification and evaluation tasks run: local (this process) or ray",
        show_default=False,
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address", help="Ray cluster address (host:port) for --executor ray", show_default=False
    ),
]


def executor_from(kind: ExecutorKind | None, address: str | None):
    """The executor the CLI options name (local by default; --ray-address alone means Ray)."""
    from videozero.stages.fanout import Executor

    chosen = kind.value if kind is not None else ("ray" if address else "local")
    if chosen == "local" and address:
        raise VideozeroError("--ray-address needs --executor ray: drop it or add --executor ray.")
    return Executor(chosen, address)
