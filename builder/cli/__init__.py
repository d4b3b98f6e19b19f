"""The ``builder`` command line (typer + rich).

Each command group lives in its own module and attaches itself to :data:`app`.
"""

from __future__ import annotations

from builder.cli import config, db, run, secrets, sweep, tools
from builder.cli.app import app

__all__ = ["app"]

_COMMAND_MODULES = (config, db, run, secrets, sweep, tools)
