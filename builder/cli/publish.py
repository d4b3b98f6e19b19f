"""``builder publish``: push a version to a git remote or GitHub, deploy it to a host;
``builder publishers``, ``builder publications``; ``builder integrations set-token``."""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import typer

from builder.cli.app import app, console
from builder.errors import InvalidInput

if TYPE_CHECKING:
    from builder.persistence.database import Database
    from builder.sandbox.base import Sandbox
    from builder.settings import Settings

integrations_app = typer.Typer(
    help="The local user's connections to providers.", no_args_is_help=True
)
app.add_typer(integrations_app, name="integrations")


def _options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"option {pair!r}: use KEY=VALUE")
        lowered = value.lower()
        options[key] = True if lowered == "true" else False if lowered == "false" else value
    return options


async def _open(settings: Settings) -> tuple[Database, Any]:
    from builder.cli.run import LOCAL_USER
    from builder.persistence.database import Database
    from builder.persistence.migrations import upgrade_database
    from builder.persistence.users import get_or_create_user

    db = Database.from_settings(settings, cached=False)
    await upgrade_database(db)
    return db, await get_or_create_user(db, name=LOCAL_USER)


async def _publish(
    settings: Settings,
    project_name: str,
    publisher: str,
    version: int | None,
    options: dict[str, Any],
) -> Any:
    from builder.cli.export import find_project
    from builder.persistence.projects import get_project
    from builder.plugins import get_publisher_registry
    from builder.publish.service import publish_version
    from builder.sandbox.factory import create_sandbox

    db, user = await _open(settings)
    try:
        project_id = await find_project(db, project_name)
        project = await get_project(db, user_id=user.id, project_id=project_id)

        @contextlib.asynccontextmanager
        async def open_sandbox() -> AsyncIterator[Sandbox]:
            sandbox = await create_sandbox(settings, str(project_id))
            try:
                yield sandbox
            finally:
                await sandbox.close()

        async def progress(message: str) -> None:
            console.print(f"[dim]{message}[/dim]")

        return await publish_version(
            db,
            settings,
            registry=get_publisher_registry(settings),
            user=user,
            project=project,
            publisher=publisher,
            version=version,
            options=options,
            open_sandbox=open_sandbox,
            on_progress=progress,
        )
    finally:
        await db.dispose()


@app.command()
def publish(
    project: str = typer.Argument(..., help="The project's name (or id)."),
    publisher: str = typer.Argument(..., help="git, github, netlify (see `builder publishers`)."),
    version: int | None = typer.Option(
        None, "--version", min=1, help="The version to publish (default: the latest)."
    ),
    option: list[str] = typer.Option(
        [],
        "--option",
        "-o",
        help="A publisher option KEY=VALUE, stored for next time (e.g. url=…, branch=main, "
        "repo=owner/name, create=true, site_name=…).",
    ),
    secret_stdin: str | None = typer.Option(
        None,
        "--secret-stdin",
        metavar="KEY",
        help="Read the secret option KEY (e.g. password) from standard input, so it is "
        "never in the command line; it is stored encrypted.",
    ),
) -> None:
    """Push a version to a git remote or GitHub, or deploy it to a host, and print its link."""
    import asyncio

    from builder.settings import get_settings

    options = _options(option)
    if secret_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
        if not value:
            raise InvalidInput(f"--secret-stdin {secret_stdin}: standard input was empty")
        options[secret_stdin] = value
    done = asyncio.run(_publish(get_settings(), project, publisher, version, options))
    facts = ", ".join(
        f"{key} {done.detail[key]}"
        for key in ("commit", "branch", "deploy_url", "files", "uploaded")
        if done.detail.get(key) not in (None, "")
    )
    same = " (already up to date)" if done.detail.get("pushed") is False else ""
    console.print(f"published version {done.version} with {publisher}: {done.url}{same}")
    if facts:
        console.print(f"[dim]{facts}[/dim]", soft_wrap=True)


@app.command()
def publishers() -> None:
    """List where a project can be published, and the plugin of each."""
    from rich.table import Table

    from builder.plugins import get_publisher_registry

    table = Table(title="publishers")
    table.add_column("Publisher", style="bold")
    table.add_column("Plugin")
    table.add_column("Description", overflow="fold")
    for info in get_publisher_registry():
        table.add_row(info.name, info.plugin, info.description)
    console.print(table)


async def _history(settings: Settings, project_name: str) -> list[Any]:
    from builder.cli.export import find_project
    from builder.persistence.publishing import list_publications

    db, _ = await _open(settings)
    try:
        project_id: uuid.UUID = await find_project(db, project_name)
        return await list_publications(db, project_id=project_id, limit=20)
    finally:
        await db.dispose()


@app.command()
def publications(project: str = typer.Argument(..., help="The project's name (or id).")) -> None:
    """A project's latest pushes and deploys: status, link, and what failed."""
    import asyncio

    from rich.table import Table

    from builder.settings import get_settings

    table = Table(title=f"publications of {project}")
    for column in ("When", "Publisher", "Version", "Status", "Link or error"):
        table.add_column(column, overflow="fold")
    for item in asyncio.run(_history(get_settings(), project)):
        table.add_row(
            f"{item.created_at:%Y-%m-%d %H:%M}",
            item.publisher,
            str(item.version),
            item.status,
            item.error if item.status == "error" else (item.url or "-"),
        )
    console.print(table)


async def _set_token(settings: Settings, provider: str, token: str) -> None:
    from builder.crypto import Keyring
    from builder.persistence.integrations import store_integration

    keyring = Keyring.from_settings(settings)
    db, user = await _open(settings)
    try:
        await store_integration(
            db, user_id=user.id, provider=provider, access_token=token, keyring=keyring
        )
    finally:
        await db.dispose()


@integrations_app.command("set-token")
def set_token(
    provider: str = typer.Argument(..., help="The provider, e.g. github or netlify."),
) -> None:
    """Store a personal access token (read from standard input), encrypted."""
    import asyncio

    from builder.settings import get_settings

    token = sys.stdin.readline().strip()
    if not token:
        raise InvalidInput("no token on standard input: pipe it in, e.g. < token.txt")
    asyncio.run(_set_token(get_settings(), provider, token))
    console.print(f"stored the {provider} token (encrypted)")
