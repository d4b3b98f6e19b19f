"""A project's workspace in this process: its sandbox, its dev server, its preview.

The HTTP layer reaches sandboxes only through :class:`Workspaces` (the runs service's
``workspaces``): the dev-server routes, the preview gateway, the file and export routes
and the health check call it, never the sandbox pool or the dev-server tool themselves.
Starting a dev server uses the same code as the agent's ``start_dev_server`` tool
(:func:`~builder.tools.devserver.launch_dev_server`).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from contextlib import AbstractAsyncContextManager

from builder.persistence.database import Database
from builder.persistence.files import sync_workspace
from builder.persistence.projects import project_replica, record_replica
from builder.preview.gateway import Misdirected, PreviewTarget
from builder.preview.tokens import PreviewGrant
from builder.runs.sandboxes import discard_project_sandbox
from builder.sandbox.base import ProcessInfo, Sandbox
from builder.sandbox.pool import SandboxPool
from builder.settings import Settings
from builder.tools.devserver import DEV_SERVER, DevServerLaunch, launch_dev_server

__all__ = [
    "DevServerLaunch",
    "ProcessInfo",
    "Sandbox",
    "Workspaces",
    "check_sandbox_backend",
    "hot_reloads",
    "preview_target",
]

LOG_LINES = 50
"""Lines of a dev server's output its status shows."""


def hot_reloads(command: str | None) -> bool:
    """Whether the dev server this command started updates its pages itself when files
    change: a package.json's ``dev`` script (Vite, Astro, Next, Nuxt… replace modules in
    place). The static file server and ``start``/``serve``/``preview`` scripts (production
    servers) do not: a page shows a change once it is loaded again."""
    return bool(command) and str(command).startswith("npm run dev")


class Workspaces:
    """Projects' sandboxes in this process, and what runs in them.

    Args:
        pool: The live sandboxes (shared with the runs).
        db: Where a project's replica is recorded.
        settings: Sandbox, dev-server and preview settings.
    """

    def __init__(self, pool: SandboxPool, db: Database, settings: Settings) -> None:
        self.pool = pool
        self.db = db
        self.settings = settings

    def is_live(self, project_id: str) -> bool:
        """Whether the project has a live sandbox in this process."""
        return project_id in self.pool.project_ids()

    def sandbox(self, project_id: str) -> AbstractAsyncContextManager[Sandbox]:
        """Lease the project's sandbox (created, and restored from its latest version,
        when it has none here)."""
        return self.pool.lease(project_id)

    async def sync(self, project_id: uuid.UUID, *, force: bool = False) -> None:
        """Bring the project's sandbox to its latest version (after an edit or a restore
        made outside a run; hold the project idle first)."""
        async with self.pool.lease(str(project_id)) as sandbox:
            await sync_workspace(self.db, project_id=project_id, sandbox=sandbox, force=force)

    async def dev_server(
        self, project_id: str, *, log_lines: int = LOG_LINES
    ) -> ProcessInfo | None:
        """The dev server of the project's live sandbox; None when it has none here (no
        sandbox is created only to say that nothing runs in it)."""
        if not self.is_live(project_id):
            return None
        async with self.pool.lease(project_id) as sandbox:
            return await sandbox.process_info(DEV_SERVER, log_lines=log_lines)

    async def start_dev_server(self, project_id: str) -> DevServerLaunch:
        """Start (or restart) the project's dev server and wait until it answers or gives
        up; once it runs, other replicas forward its previews to this one."""
        async with self.pool.lease(project_id) as sandbox:
            launch = await launch_dev_server(sandbox, settings=self.settings)
        if launch.info.running:
            await record_replica(
                self.db, project_id=project_id, replica=self.settings.advertise_url
            )
        return launch

    async def stop_dev_server(self, project_id: str) -> ProcessInfo | None:
        """Stop the project's dev server (nothing happens when none runs); its state after."""
        if self.is_live(project_id):
            async with self.pool.lease(project_id) as sandbox:
                await sandbox.stop_process(DEV_SERVER)
        return await self.dev_server(project_id)

    async def preview_target(
        self, grant: PreviewGrant, *, may_forward: bool
    ) -> PreviewTarget | None:
        """Where a valid preview link leads from this replica (see :func:`preview_target`)."""
        return await preview_target(
            self.pool, self.db, self.settings, grant, may_forward=may_forward
        )

    async def discard(self, project_id: str) -> None:
        """After the project is deleted: close its sandbox and remove its workspace."""
        await discard_project_sandbox(self.pool, self.settings, project_id)


async def preview_target(
    pool: SandboxPool,
    db: Database,
    settings: Settings,
    grant: PreviewGrant,
    *,
    may_forward: bool,
) -> PreviewTarget | None:
    """Where a valid preview link leads from this replica.

    The project's dev server when it runs in this replica's sandbox (its local port, or
    its E2B host) and is the one the link was made for; else, when ``may_forward``, the
    replica recorded as running it (``BUILDER_ADVERTISE_URL``); else None. A preview
    request never creates a sandbox.

    Raises:
        Misdirected: Another replica runs it and ``BUILDER_PREVIEW_FORWARD`` is off.
    """
    key = str(grant.project_id)
    if key in pool.project_ids():
        async with pool.lease(key) as sandbox:
            info = await sandbox.process_info(DEV_SERVER, log_lines=0)
        if (
            info is not None
            and info.running
            and info.preview_url
            and int(info.started_at) == grant.generation
        ):
            return PreviewTarget(url=info.preview_url, generation=int(info.started_at))
    if not may_forward:
        return None
    holder = await project_replica(db, project_id=grant.project_id)
    if holder is None or holder == settings.advertise_url:
        return None
    if not settings.preview_forward:
        raise Misdirected(holder)
    return PreviewTarget(url=holder + "/", generation=grant.generation, forwarded=True)


async def check_sandbox_backend(settings: Settings, *, timeout: float) -> None:
    """Raise unless new sandboxes can be made: E2B accepts the key (within ``timeout``),
    or the local workspaces directory is writable.

    Raises:
        Exception: Whatever the backend's probe raised (its kind says what failed).
    """
    if settings.sandbox_backend == "e2b":
        from builder.sandbox.e2b import check_e2b_access

        # A configured key is not enough: E2B must accept it, within the probe's time.
        await check_e2b_access(settings, timeout=timeout)
        return
    root = settings.data_dir / "workspaces"
    await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
    if not os.access(root, os.W_OK):
        raise PermissionError(str(root))
