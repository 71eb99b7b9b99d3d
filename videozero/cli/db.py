"""`videozero db`: create or migrate a store, and say which schema revision it is at."""

from __future__ import annotations

import typer
from rich.text import Text

from store import display_url
from store.engine import create_store_engine, current_revision, head_revision, open_store
from videozero.cli.common import DbOption, console, resolve_db

app = typer.Typer(help="Create, migrate and inspect the QA store.", no_args_is_help=True)


@app.command()
def upgrade(db: DbOption = None) -> None:
    """Create the store if needed and apply every migration up to the newest schema."""
    url = resolve_db(db)
    store = open_store(url)
    console.print(Text(f"store at {display_url(url)} is at schema revision {head_revision()}", style="green"))
    store.dispose()


@app.command()
def current(db: DbOption = None) -> None:
    """Print the store's schema revision and the newest one this videozero knows."""
    url = resolve_db(db)
    _, engine = create_store_engine(url, create=False)
    try:
        at = current_revision(engine)
    finally:
        engine.dispose()
    console.print(f"store: {display_url(url)}\nrevision: {at or '(empty)'}\nnewest: {head_revision()}")
