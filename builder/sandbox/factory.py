"""Choosing the sandbox backend from settings."""

from __future__ import annotations

import asyncio

from builder.errors import ConfigurationError
from builder.sandbox.base import Sandbox
from builder.sandbox.paths import check_project_id
from builder.settings import Settings

__all__ = ["create_sandbox"]


async def create_sandbox(settings: Settings, project_id: str) -> Sandbox:
    """A new sandbox for ``project_id`` on the backend ``settings.sandbox_backend`` names.

    ``local`` opens (or creates) the project's workspace directory and confines
    commands with bubblewrap where it works; ``local-unconfined`` does not confine
    (development only); ``e2b`` creates
    an E2B sandbox from ``settings.e2b_template``. Files are not restored here: a
    :class:`~builder.sandbox.pool.SandboxPool` ``on_create`` hook does that.

    Raises:
        InvalidInput: The project id is not safe as a directory name.
        ConfigurationError: The backend is unknown, or E2B has no API key.
        DependencyUnavailable: E2B refused or could not be reached.
    """
    check_project_id(project_id)
    if settings.sandbox_backend in {"local", "local-unconfined"}:
        from builder.sandbox.local import LocalSandbox

        # Opening the workspace touches the disk and may probe bubblewrap (a process):
        # not on the event loop.
        return await asyncio.to_thread(LocalSandbox, project_id, settings=settings)
    if settings.sandbox_backend == "e2b":
        from builder.sandbox.e2b import E2BSandbox

        return await E2BSandbox.create(project_id, settings=settings)
    raise ConfigurationError(f"unknown sandbox backend {settings.sandbox_backend!r}")
