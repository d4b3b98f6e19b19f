"""The root ``builder`` command; subcommands attach themselves in their own modules."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import typer

from builder._version import __version__

if TYPE_CHECKING:
    from rich.console import Console

    from builder.settings import Settings

app = typer.Typer(
    name="builder",
    help="builder: an AI web-builder agent that builds and edits sites in a sandbox.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: rich's help renderer imports markdown and syntax highlighting,
    # which cost `builder --help` more than everything else it does.
    rich_markup_mode=None,
)


class _FirstUse:
    """A rich ``Console`` made when first used: `builder --help` never imports rich."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


console = cast("Console", _FirstUse())
err_console = cast("Console", _FirstUse(stderr=True))


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"builder {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level."),
) -> None:
    """builder: an AI web-builder agent that builds and edits sites in a sandbox."""
    from builder.log import configure_logging
    from builder.settings import get_settings

    # Logs go to stderr so that command output (tables, --json) stays clean on stdout.
    settings = get_settings()
    level = settings.log_level if verbose else "WARNING"
    if settings.log_level == "ERROR":
        level = "ERROR"
    # The terminal gets one line per problem; tracebacks go to the log file (and to
    # the terminal with --verbose).
    configure_logging(
        settings.model_copy(update={"log_level": level}),
        stream=sys.stderr,
        tracebacks=verbose,
        log_file=log_file(settings),
    )


def log_file(settings: Settings) -> Path:
    """Where commands append their full log, tracebacks included."""
    return settings.data_dir / "logs" / "builder.log"
