"""Entry point of the `videozero` command: subcommands, and one-sentence errors for bad input."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from store import DatabaseError, StoreError
from videozero.cli import browse, db, iterate, mine, model, qa, question, warmup
from videozero.cli.common import err_console
from videozero.cli.eval import eval_command
from videozero.errors import VideozeroError
from videozero.quiet import quiet_libraries

app = typer.Typer(
    name="videozero",
    help="Self-evolving video language models: mine evidence, write and verify questions, train the solver.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db.app, name="db")
app.command("mine")(mine.mine)
app.command("question")(question.question)
app.command("iterate")(iterate.iterate)
app.command("serve")(iterate.serve)
model.app.command("warmup")(warmup.warmup)
app.add_typer(model.app, name="model")
app.add_typer(qa.app, name="qa")
app.command("eval")(eval_command)
app.command("browse")(browse.browse)


def main() -> None:
    """Run the CLI; user-facing errors print as one red sentence and exit with status 1."""
    quiet_libraries()
    try:
        app()
    except (VideozeroError, StoreError) as exc:
        fail(str(exc))
    except DatabaseError as exc:
        reason = (str(getattr(exc, "orig", exc)).strip().splitlines() or ["no reason given"])[0]
        fail(f"the store rejected the request ({reason}).")
    except OSError as exc:  # the system refused a file or a socket nothing above named
        where = f" {exc.filename}" if exc.filename else ""
        fail(
            f"the system refused{where}: {exc.strerror or exc} (check the path, its permissions and free space)."
        )
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]", markup=True)
        sys.exit(130)


def fail(sentence: str) -> None:
    """Print `sentence` as the one red error line (paths and names in it are text, never markup); exit 1."""
    err_console.print(f"[bold red]error:[/] {escape(sentence)}", markup=True, highlight=False, soft_wrap=True)
    sys.exit(1)


if __name__ == "__main__":
    main()
