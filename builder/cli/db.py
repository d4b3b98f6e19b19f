"""``builder db``: migrate the database, show its schema revision, stop the embedded one."""

from __future__ import annotations

import typer

from builder.cli.app import app, console

db_app = typer.Typer(help="Manage the database (BUILDER_DATABASE_URL or the embedded one).")
app.add_typer(db_app, name="db")


def _url() -> str:
    from builder.settings import get_settings

    settings = get_settings()
    if settings.database_url is not None:
        return settings.database_url
    from builder.persistence.embedded import start_embedded

    return start_embedded(settings.data_dir / "postgres")


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@db_app.command("upgrade")
def upgrade(
    revision: str = typer.Argument("head", help="Revision to reach (default: the newest)."),
) -> None:
    """Apply migrations: builder's tables and LangGraph's checkpoint tables."""
    import asyncio

    from builder.persistence.migrations import current_revision, upgrade_database

    url = _url()
    asyncio.run(upgrade_database(url, revision=revision))
    revision_now = asyncio.run(current_revision(url))
    console.print(f"{_safe(url)} is at revision {revision_now}", soft_wrap=True)


@db_app.command("current")
def current() -> None:
    """Show the database's revision and whether it is the newest."""
    import asyncio

    from builder.persistence.migrations import current_revision, head_revision

    url = _url()
    revision = asyncio.run(current_revision(url))
    head = head_revision()
    state = "up to date"
    if revision != head:
        state = f"behind (newest is {head}); run `builder db upgrade`"
    console.print(f"{_safe(url)}: revision {revision or 'none'} — {state}", soft_wrap=True)


@db_app.command("stop")
def stop() -> None:
    """Stop the embedded PostgreSQL of the data directory, if it is running."""
    from builder.persistence.embedded import stop_embedded
    from builder.settings import get_settings

    settings = get_settings()
    directory = settings.data_dir / "postgres"
    if settings.database_url is not None:
        console.print(
            "BUILDER_DATABASE_URL is set: builder does not run that server, so it does not stop it",
            soft_wrap=True,
        )
        return
    if stop_embedded(directory):
        console.print(f"stopped the embedded PostgreSQL in {directory}", soft_wrap=True)
    else:
        console.print(f"no embedded PostgreSQL is running in {directory}", soft_wrap=True)
