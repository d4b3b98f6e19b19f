"""``builder secrets``: generate keys for ``BUILDER_ENCRYPTION_KEYS``."""

from __future__ import annotations

import datetime as dt

import typer

from builder.cli.app import app

secrets_app = typer.Typer(help="Encryption keys for secrets at rest.", no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")


@secrets_app.command("generate-key")
def generate(
    key_id: str = typer.Option(
        None, "--id", help="Key id (default: today's date, e.g. k20260101)."
    ),
) -> None:
    """Print a new `id:base64` AES-256 key to put first in BUILDER_ENCRYPTION_KEYS."""
    from builder.crypto import generate_key

    kid = key_id or f"k{dt.datetime.now(dt.UTC):%Y%m%d}"
    typer.echo(f"{kid}:{generate_key()}")
