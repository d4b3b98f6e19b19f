"""Which sandbox a project gets: the one recorded for it, or a new one.

The pool asks this factory for a project's sandbox when it has none. A project's
sandbox id is recorded on its row, so with E2B a replica that has never seen the
project reattaches to the sandbox another replica created instead of starting a second
one; when that sandbox has expired a new one is created and recorded, and the pool's
``on_create`` hook restores the project's latest version into it. A local sandbox is a
directory named after the project, so there is nothing to look up.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid

from e2b import AsyncSandbox

from builder.errors import DependencyUnavailable
from builder.log import get_logger
from builder.persistence.database import Database
from builder.persistence.files import sync_workspace
from builder.persistence.projects import project_sandbox, record_sandbox
from builder.sandbox.base import Sandbox
from builder.sandbox.e2b import E2BSandbox
from builder.sandbox.factory import create_sandbox
from builder.sandbox.local import workspace_path
from builder.sandbox.pool import SandboxPool
from builder.settings import Settings

__all__ = [
    "ProjectSandboxes",
    "discard_project_sandbox",
    "project_pool",
    "remove_workspace",
    "restore_latest",
]

_log = get_logger("builder.runs.sandboxes")


class ProjectSandboxes:
    """A sandbox factory for :class:`~builder.sandbox.pool.SandboxPool` that remembers.

    Args:
        db: Where each project's sandbox id is recorded.
        settings: The backend and its settings.
        e2b_class: The E2B SDK's sandbox class (a stand-in in tests).
    """

    def __init__(
        self, db: Database, settings: Settings, *, e2b_class: type[AsyncSandbox] = AsyncSandbox
    ) -> None:
        self.db = db
        self.settings = settings
        self.e2b_class = e2b_class

    async def __call__(self, project_id: str) -> Sandbox:
        if self.settings.sandbox_backend != "e2b":
            sandbox = await create_sandbox(self.settings, project_id)
        else:
            sandbox = await self._e2b(project_id)
        await self._record(project_id, sandbox.sandbox_id)
        return sandbox

    async def _e2b(self, project_id: str) -> Sandbox:
        known = await self._recorded(project_id)
        if known is not None:
            try:
                sandbox = await E2BSandbox.connect(
                    project_id, known, settings=self.settings, sandbox_class=self.e2b_class
                )
                if await sandbox.health():
                    _log.info("sandbox.reattached", project_id=project_id, sandbox_id=known)
                    return sandbox
            except DependencyUnavailable:
                pass
            _log.info("sandbox.expired", project_id=project_id, sandbox_id=known)
        return await E2BSandbox.create(
            project_id, settings=self.settings, sandbox_class=self.e2b_class
        )

    async def _recorded(self, project_id: str) -> str | None:
        try:
            return await project_sandbox(self.db, project_id=uuid.UUID(project_id))
        except ValueError:  # not a project of this database (an app's own thread id)
            return None

    async def _record(self, project_id: str, sandbox_id: str) -> None:
        try:
            key = uuid.UUID(project_id)
        except ValueError:
            return
        await record_sandbox(self.db, project_id=key, sandbox_id=sandbox_id)


async def restore_latest(db: Database, sandbox: Sandbox) -> None:
    """Restore a new, empty sandbox from its project's latest snapshot (if any)."""
    try:
        project_id = uuid.UUID(sandbox.project_id)
    except ValueError:
        return
    if await sandbox.list_files("."):
        # A workspace that survived (local backend): the runs service checks the
        # version it holds before a turn and refreshes it when it is behind.
        return
    await sync_workspace(db, project_id=project_id, sandbox=sandbox)


def project_pool(db: Database, settings: Settings) -> SandboxPool:
    """The pool of projects' sandboxes: each one reattached or created by
    :class:`ProjectSandboxes` and, when new, restored from its project's latest
    snapshot (:func:`restore_latest`)."""

    async def restore(sandbox: Sandbox) -> None:
        await restore_latest(db, sandbox)

    return SandboxPool.from_settings(
        settings, factory=ProjectSandboxes(db, settings), on_create=restore
    )


async def remove_workspace(settings: Settings, project_id: str) -> bool:
    """Remove a deleted project's local workspace directory (its snapshots keep the files).

    Returns:
        True when there was a directory to remove (never for E2B sandboxes: closing one
        ends it).
    """
    if settings.sandbox_backend == "e2b":
        return False
    root = workspace_path(settings, project_id)
    if not root.is_dir() or root.is_symlink():
        return False
    await asyncio.to_thread(shutil.rmtree, root)
    return True


async def discard_project_sandbox(pool: SandboxPool, settings: Settings, project_id: str) -> None:
    """After a project is deleted: close its sandbox with every process and dev server in
    it, and remove its local workspace."""
    await pool.discard(project_id)
    await remove_workspace(settings, project_id)
