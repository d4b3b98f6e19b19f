"""``builder export``: a project's version (or its build output) as a zip or tar.gz file."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from builder.cli.app import app, console

if TYPE_CHECKING:
    from builder.persistence.database import Database
    from builder.settings import Settings


async def find_project(db: Database, name_or_id: str) -> uuid.UUID:
    """The local user's project called ``name_or_id`` (or with that id).

    Raises:
        NotFound: The local user has no such project.
    """
    from builder.cli.run import LOCAL_USER
    from builder.errors import NotFound
    from builder.persistence.projects import list_projects
    from builder.persistence.users import get_or_create_user

    user = await get_or_create_user(db, name=LOCAL_USER)
    cursor: str | None = None
    while True:
        page = await list_projects(db, user_id=user.id, limit=200, cursor=cursor)
        for project in page.items:
            if project.name == name_or_id or str(project.id) == name_or_id:
                return project.id
        cursor = page.next_cursor
        if cursor is None:
            raise NotFound("project", name_or_id)


async def _export(
    settings: Settings,
    project: str,
    version: int | None,
    output: Path | None,
    format: str,
    built: bool,
) -> tuple[Path, int, int]:
    import asyncio

    from builder.persistence.database import Database
    from builder.persistence.migrations import upgrade_database
    from builder.publish.archive import FORMATS, archive_chunks
    from builder.publish.source import FileSource, VersionFiles, latest_build
    from builder.sandbox.factory import create_sandbox

    db = Database.from_settings(settings, cached=False)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(db.dispose)
        await upgrade_database(db)
        project_id = await find_project(db, project)
        files: FileSource
        if built:
            sandbox = await create_sandbox(settings, str(project_id))
            stack.push_async_callback(sandbox.close)
            version, files = await latest_build(
                db, sandbox, project_id=project_id, version=version, settings=settings
            )
        else:
            source = VersionFiles(db, project_id=project_id, version=version)
            await source.entries()  # a missing version fails before a file is made
            files = source
        count = len(await files.paths())
        extension = FORMATS[format][1]
        target = output or Path(f"{project}{f'-v{version}' if version else ''}{extension}")
        partial = target.with_name(f".{target.name}.part")
        written = 0
        try:
            with partial.open("wb") as sink:
                async for chunk in archive_chunks(files, format=format):  # type: ignore[arg-type]
                    await asyncio.to_thread(sink.write, chunk)
                    written += len(chunk)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return target, count, written
    raise AssertionError("unreachable")  # pragma: no cover


@app.command()
def export(
    project: str = typer.Argument(..., help="The project's name (or id)."),
    version: int | None = typer.Option(
        None, "--version", min=1, help="The version to export (default: the latest)."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="The archive to write (default: PROJECT[-vN].zip)."
    ),
    format: str = typer.Option(
        "", "--format", "-f", help="zip or tar.gz (default: from -o's name, else zip)."
    ),
    built: bool = typer.Option(
        False, "--built", help="Export the build output (dist/) of the latest version."
    ),
) -> None:
    """Write a version's files (or its build output) to a zip or tar.gz archive."""
    import asyncio

    from builder.errors import InvalidInput
    from builder.settings import get_settings

    chosen = format or ("tar.gz" if output and output.name.endswith((".tar.gz", ".tgz")) else "zip")
    if chosen not in ("zip", "tar.gz"):
        raise InvalidInput(f"unknown archive format {chosen!r}: use zip or tar.gz")
    target, count, size = asyncio.run(
        _export(get_settings(), project, version, output, chosen, built)
    )
    console.print(f"wrote {target} ({count} files, {size:,} bytes)")
