"""The root ``builder`` command; subcommands attach themselves in their own modules."""

from __future__ import annotations

import typer
from rich.console import Console

from builder._version import __version__

app = typer.Typer(
    name="builder",
    help="builder: an AI web-builder agent that builds and edits sites in a sandbox.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"builder {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
) -> None:
    """builder: an AI web-builder agent that builds and edits sites in a sandbox."""
