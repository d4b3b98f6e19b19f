"""``builder worker``: work queued runs, without serving HTTP."""

from __future__ import annotations

import contextlib
import signal
import sys
from typing import TYPE_CHECKING

import typer

from builder.cli.app import app, err_console

if TYPE_CHECKING:
    from builder.settings import Settings


async def _work(settings: Settings, concurrency: int) -> None:
    # Imported here, as in every command: `builder --help` imports no more than typer.
    import asyncio

    from builder.errors import ConfigurationError
    from builder.log import get_logger
    from builder.persistence.database import Database
    from builder.persistence.migrations import current_revision, head_revision
    from builder.runs.service import RunService

    log = get_logger("builder.worker")
    db = Database.from_settings(settings, cached=False)
    try:
        if await current_revision(db) != head_revision():
            raise ConfigurationError("the database is not migrated: run `builder db upgrade` first")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        async with RunService.open(settings, db=db, worker="all", concurrency=concurrency):
            log.info("worker.started", concurrency=concurrency)
            await stop.wait()
            # Leaving the block stops claiming, lets running steps finish within
            # BUILDER_SHUTDOWN_GRACE_SECONDS, then hands what is left to other workers.
            log.info("worker.stopping", grace=settings.shutdown_grace_seconds)
    finally:
        await db.dispose()


@app.command()
def worker(
    concurrency: int | None = typer.Option(
        None, min=1, help="Most runs worked at once (default: BUILDER_WORKER_CONCURRENCY)."
    ),
) -> None:
    """Work queued runs (and take over those of workers that died) until SIGTERM."""
    import asyncio

    from builder.log import configure_logging
    from builder.settings import get_settings

    settings = get_settings()
    configure_logging(settings, stream=sys.stderr)
    if settings.database_url is None:
        err_console.print(
            "builder worker needs BUILDER_DATABASE_URL: the queue is shared through "
            "PostgreSQL (use `builder serve` to run everything in one process)",
            soft_wrap=True,
        )
        raise typer.Exit(2)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_work(settings, concurrency or settings.worker_concurrency))
