"""The web-builder graph hosted by another LangGraph server: ``langgraph dev`` and
LangGraph Studio.

``langgraph.json`` at the repository root names :func:`make_graph`, a graph factory
without arguments: ``langgraph dev`` serves the graph as ``web_builder``, and Studio
(or any LangGraph client) runs it on that server's own threads.

That server passes no :class:`~builder.graphs.context.RunContext` (only JSON reaches a
graph there), so the graph builds one from the settings (``BUILDER_*``) for each step:
the thread's sandbox from a pool of project sandboxes
(:func:`~builder.runs.sandboxes.project_pool`), the lock manager and the database. Each
thread of the dev server is a builder project of the same id, owned by the user
``langgraph-dev`` and created at its first run: its versions are saved as the runs
service saves them, so ``builder serve`` and the CLI see what a Studio run built.

The resources live as long as one run (the factory is an async context manager that
the dev server enters for each run and each read): the run's sandbox, with any dev
server started in it, is closed when the run ends; its workspace stays on disk.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress

from langchain_core.runnables import RunnableConfig

from builder.errors import AlreadyExists, InvalidInput
from builder.graphs.context import RunContext
from builder.graphs.web_builder import WebBuilderGraph, build_web_builder_graph
from builder.locks import LockManager
from builder.persistence.database import Database
from builder.persistence.runs import create_thread
from builder.persistence.users import get_or_create_user
from builder.runs.sandboxes import project_pool
from builder.sandbox.pool import SandboxPool
from builder.settings import Settings, get_settings
from builder.tools.mcp import tools_with_mcp

__all__ = ["HOSTED_USER", "SettingsContexts", "make_graph"]

HOSTED_USER = "langgraph-dev"
"""The builder user that owns the projects of the dev server's threads."""


class SettingsContexts:
    """Run contexts built from settings, opened on the first step that needs one.

    Args:
        settings: The database, sandbox backend, locks and limits to use.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stack = AsyncExitStack()
        self._opened: tuple[Database, LockManager, SandboxPool, uuid.UUID] | None = None
        self._projects: set[uuid.UUID] = set()

    async def _open(self) -> tuple[Database, LockManager, SandboxPool, uuid.UUID]:
        if self._opened is None:
            # Without BUILDER_DATABASE_URL this starts the embedded server: not on the loop.
            db = await asyncio.to_thread(Database.from_settings, self.settings, cached=False)
            self._stack.push_async_callback(db.dispose)
            locks = LockManager.from_settings(self.settings, dsn=db.psycopg_url)
            self._stack.push_async_callback(locks.close)
            pool = project_pool(db, self.settings)
            self._stack.push_async_callback(pool.close)
            owner = await get_or_create_user(db, name=HOSTED_USER)
            self._opened = (db, locks, pool, owner.id)
        return self._opened

    @asynccontextmanager
    async def __call__(self, config: RunnableConfig, run_id: str) -> AsyncIterator[RunContext]:
        """The run context of one step: the thread's sandbox is leased meanwhile.

        Raises:
            InvalidInput: The config names no thread, or a thread id that is not a UUID.
        """
        thread_id = str((config.get("configurable") or {}).get("thread_id") or "")
        try:
            project_id = uuid.UUID(thread_id)
        except ValueError:
            raise InvalidInput(
                f"the web-builder graph runs on a thread whose id is a UUID, not {thread_id!r}"
            ) from None
        db, locks, pool, owner = await self._open()
        if project_id not in self._projects:
            # AlreadyExists: created by an earlier run, or a project of builder's own.
            with suppress(AlreadyExists):
                await create_thread(
                    db, user_id=owner, name="langgraph dev thread", thread_id=project_id
                )
            self._projects.add(project_id)
        async with pool.lease(str(project_id)) as sandbox:
            yield RunContext(
                sandbox=sandbox,
                locks=locks,
                settings=self.settings,
                db=db,
                project_id=str(project_id),
                run_id=run_id,
            )

    async def aclose(self) -> None:
        """Close the sandboxes, the locks and the database connections."""
        await self._stack.aclose()
        self._opened = None


@asynccontextmanager
async def make_graph() -> AsyncIterator[WebBuilderGraph]:
    """The web-builder graph with run contexts from :func:`get_settings`.

    ``langgraph.json`` names this factory; ``langgraph dev`` enters it for each run (and
    each read of a thread's state). The model is ``BUILDER_MODEL``; the tools are the
    plugins' and those of ``BUILDER_MCP_SERVERS``.
    """
    settings = get_settings()
    contexts = SettingsContexts(settings)
    try:
        yield build_web_builder_graph(
            tools=await tools_with_mcp(settings), settings=settings, contexts=contexts
        )
    finally:
        await contexts.aclose()
