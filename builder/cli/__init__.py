"""The ``builder`` command line (typer + rich).

Each command group lives in its own module and attaches itself to :data:`app`.
"""

from __future__ import annotations

from builder.cli import (
    config,
    db,
    export,
    keys,
    new,
    publish,
    run,
    sandbox,
    secrets,
    serve,
    sweep,
    tools,
    worker,
)
from builder.cli.app import app, err_console
from builder.errors import BuilderError

__all__ = ["app", "main"]


def main() -> None:
    """The ``builder`` console script: builder errors become one line and exit status 2."""
    try:
        app(prog_name="builder")
    except BuilderError as exc:
        err_console.print(f"[red]error[/red] ({exc.code}): {exc.message}", soft_wrap=True)
        raise SystemExit(2) from None


_COMMAND_MODULES = (
    config,
    db,
    export,
    keys,
    new,
    publish,
    run,
    sandbox,
    secrets,
    serve,
    sweep,
    tools,
    worker,
)
