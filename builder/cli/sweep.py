"""``builder sweep``: expire and evict agent contexts once."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer

from builder.cli.app import app, console

if TYPE_CHECKING:
    from builder.settings import Settings


async def _sweep(settings: Settings, strategy: str | None, batch_size: int) -> dict[str, object]:
    from builder.errors import ConfigurationError
    from builder.graphs.checkpointer import TTLCheckpointer
    from builder.persistence.database import Database
    from builder.persistence.migrations import current_revision, head_revision

    db = Database.from_settings(settings, cached=False)
    try:
        # A scheduled sweep only reads the schema; changing it is `builder db upgrade`'s job.
        if await current_revision(db) != head_revision():
            raise ConfigurationError("the database is not migrated: run `builder db upgrade` first")
        async with TTLCheckpointer.from_settings(db.psycopg_url, settings) as checkpointer:
            result = await checkpointer.sweep(
                strategy=strategy or settings.context_sweep_strategy,  # type: ignore[arg-type]
                batch_size=batch_size,
            )
    finally:
        await db.dispose()
    return {"strategy": result.strategy, "expired": result.expired, "evicted": result.evicted}


@app.command()
def sweep(
    strategy: str | None = typer.Option(
        None, help="`delete` or `keep_latest` (default: BUILDER_CONTEXT_SWEEP_STRATEGY)."
    ),
    batch_size: int = typer.Option(100, min=1, help="Threads locked and removed per batch."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Remove expired agent contexts and evict the least recently used above the cap."""
    import asyncio

    from builder.settings import get_settings

    if strategy not in (None, "delete", "keep_latest"):
        raise typer.BadParameter("strategy must be `delete` or `keep_latest`")
    outcome = asyncio.run(_sweep(get_settings(), strategy, batch_size))
    if as_json:
        typer.echo(json.dumps(outcome))
        return
    expired, evicted = outcome["expired"], outcome["evicted"]
    assert isinstance(expired, list) and isinstance(evicted, list)
    console.print(
        f"swept {len(expired) + len(evicted)} context(s) ({outcome['strategy']}): "
        f"{len(expired)} expired, {len(evicted)} evicted over the cap"
    )
    for thread_id in expired:
        console.print(f"  expired  {thread_id}")
    for thread_id in evicted:
        console.print(f"  evicted  {thread_id}")
