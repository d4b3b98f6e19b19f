"""``builder new``: create a project, optionally from a starter; ``builder starters``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from builder.cli.app import app, console

if TYPE_CHECKING:
    from builder.settings import Settings


@app.command()
def new(
    name: str = typer.Argument(..., help="The project's name."),
    starter: str | None = typer.Option(
        None, "--starter", "-s", help="Begin with a starter's files (see `builder starters`)."
    ),
    description: str = typer.Option("", "--description", help="What the project is."),
) -> None:
    """Create a project for the local user; `builder run -p NAME` then works on it."""
    import asyncio

    from builder.settings import get_settings

    project_id, version = asyncio.run(_new(get_settings(), name, starter, description))
    what = f" from the {starter} starter (version {version})" if starter else ""
    console.print(f"created project [bold]{name}[/bold] ({project_id}){what}")


async def _new(
    settings: Settings, name: str, starter: str | None, description: str
) -> tuple[str, int | None]:
    from builder.cli.run import LOCAL_USER
    from builder.persistence.database import Database
    from builder.persistence.migrations import upgrade_database
    from builder.persistence.snapshots import list_snapshots
    from builder.persistence.users import get_or_create_user
    from builder.starters import create_project

    db = Database.from_settings(settings, cached=False)
    try:
        await upgrade_database(db)
        user = await get_or_create_user(db, name=LOCAL_USER)
        project = await create_project(
            db,
            user_id=user.id,
            name=name,
            description=description,
            starter=starter,
            settings=settings,
        )
        latest = (await list_snapshots(db, project_id=project.id, limit=1)).items
        return str(project.id), latest[0].version if latest else None
    finally:
        await db.dispose()


@app.command()
def starters() -> None:
    """List the starters a project can begin with, and the plugin of each."""
    from rich.table import Table

    from builder.plugins import get_starter_registry

    table = Table(title="starters")
    table.add_column("Starter", style="bold")
    table.add_column("Plugin")
    table.add_column("Description", overflow="fold")
    for starter in get_starter_registry():
        table.add_row(starter.name, starter.plugin, starter.description)
    console.print(table)
