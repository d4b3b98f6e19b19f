"""``publish_project``: push the project to GitHub or a git remote, or deploy it to a
host, when the user asks for it."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

from builder.errors import ConfigurationError
from builder.sandbox.base import Sandbox
from builder.tools.context import ToolContext

__all__ = ["publish_project"]


async def publish_project(
    publisher: str,
    version: int | None = None,
    repo: str | None = None,
    create_repository: bool = False,
    private: bool = True,
    site_name: str | None = None,
    *,
    ctx: ToolContext,
) -> str:
    """Push a saved version to GitHub or a git remote, or deploy it, only when the user asks.

    Pushes a saved version as a commit to GitHub or to the project's git remote, or
    deploys the site (its build output when it builds) to Netlify, with the user's own
    connection. Save the work first: it publishes a saved version, the latest by default.

    Args:
        publisher: Where to: "github", "git" (the remote the user configured), "netlify",
            or another installed publisher.
        version: The version to publish; omit for the latest.
        repo: For github: the repository, "name" or "owner/name" (default: from the
            project's name, or the one used before).
        create_repository: For github: create the repository if it does not exist
            (only when the user asked for a new repository).
        private: For github: make a created repository private.
        site_name: For netlify: the name of the site created on the first deploy.
    """
    from builder.persistence.projects import get_project, project_owner
    from builder.persistence.users import get_user
    from builder.plugins import get_publisher_registry
    from builder.publish.service import publish_version

    if ctx.db is None:
        raise ConfigurationError("publishing needs the database; this run has none")
    project_id = uuid.UUID(ctx.project_id)
    owner = await project_owner(ctx.db, project_id=project_id)
    user = await get_user(ctx.db, user_id=owner)
    project = await get_project(ctx.db, user_id=owner, project_id=project_id)
    options: dict[str, str | bool | int] = {}
    if publisher == "github":
        if repo:
            options["repo"] = repo
        if create_repository:
            options.update(create=True, private=private)
    if publisher == "netlify" and site_name:
        options["site_name"] = site_name

    @contextlib.asynccontextmanager
    async def this_sandbox() -> AsyncIterator[Sandbox]:
        yield ctx.sandbox

    async def progress(message: str) -> None:
        await ctx.emit("publish_project", "progress", message=message)

    done = await publish_version(
        ctx.db,
        ctx.settings,
        registry=get_publisher_registry(ctx.settings),
        user=user,
        project=project,
        publisher=publisher,
        version=version,
        options=options,
        open_sandbox=this_sandbox,
        on_progress=progress,
    )
    facts = ", ".join(
        f"{key} {done.detail[key]}"
        for key in ("repository", "branch", "commit", "deploy_url", "files", "uploaded")
        if done.detail.get(key) not in (None, "")
    )
    unchanged = (
        " (already up to date: nothing new to push)" if done.detail.get("pushed") is False else ""
    )
    return f"Published version {done.version} with {publisher}: {done.url}{unchanged}\n{facts}"
