"""``builder keys``: create, list and revoke API keys of the HTTP service."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer

from builder.cli.app import app, console, err_console

keys_app = typer.Typer(help="API keys of the HTTP service.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

T = TypeVar("T")


def _with_db(work: Callable[..., Awaitable[T]]) -> T:
    import asyncio

    from builder.persistence.database import Database
    from builder.persistence.migrations import current_revision, head_revision
    from builder.settings import get_settings

    async def run() -> T:
        # With the service's cache (Redis when configured), revoking a key here also
        # clears the servers' cached copies of authenticated keys.
        db = Database.from_settings(get_settings())
        try:
            if await current_revision(db) != head_revision():
                err_console.print("the database is not migrated: run `builder db upgrade` first")
                raise typer.Exit(1)
            return await work(db)
        finally:
            await db.dispose()

    return asyncio.run(run())


@keys_app.command("create")
def create(
    user: str = typer.Option(..., "--user", help="The key's owner (created if new)."),
    name: str = typer.Option("", "--name", help="A label to tell keys apart."),
) -> None:
    """Create a key and print it: it is shown only this once."""
    from builder.persistence.users import create_api_key, get_or_create_user

    async def work(db: object) -> str:
        owner = await get_or_create_user(db, name=user)  # type: ignore[arg-type]
        made = await create_api_key(db, user_id=owner.id, name=name)  # type: ignore[arg-type]
        err_console.print(f"key {made.info.id} for {user}; store it now, it is not shown again")
        return made.key.get_secret_value()

    typer.echo(_with_db(work))


@keys_app.command("list")
def list_keys(user: str = typer.Option(..., "--user", help="Whose keys.")) -> None:
    """List a user's keys (never the keys themselves)."""
    from rich.table import Table

    from builder.persistence.users import get_or_create_user, list_api_keys

    async def work(db: object) -> Table:
        owner = await get_or_create_user(db, name=user)  # type: ignore[arg-type]
        table = Table("id", "prefix", "name", "created", "last used", "revoked")
        for key in await list_api_keys(db, user_id=owner.id):  # type: ignore[arg-type]
            table.add_row(
                str(key.id),
                key.prefix + "…",
                key.name or "-",
                f"{key.created_at:%Y-%m-%d %H:%M}",
                f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "-",
                f"{key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "-",
            )
        return table

    console.print(_with_db(work))


@keys_app.command("revoke")
def revoke(
    key_id: uuid.UUID = typer.Argument(..., help="The key's id (from `builder keys list`)."),
    user: str = typer.Option(..., "--user", help="The key's owner."),
) -> None:
    """Revoke a key: requests with it are refused from now on."""
    from builder.persistence.users import get_or_create_user, revoke_api_key

    async def work(db: object) -> None:
        owner = await get_or_create_user(db, name=user)  # type: ignore[arg-type]
        await revoke_api_key(db, user_id=owner.id, key_id=key_id)  # type: ignore[arg-type]

    _with_db(work)
    console.print(f"revoked {key_id}")
