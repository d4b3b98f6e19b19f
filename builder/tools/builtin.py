"""builder's own tools and starters, registered through the same hooks as any plugin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from builder.hookspecs import hookimpl
from builder.tools import (
    build,
    devserver,
    edits,
    files,
    listing,
    plan,
    project,
    publishing,
    screenshot,
    shell,
)


@hookimpl
def register_tools(register: Callable[..., Any]) -> None:
    """Register the file, shell, dev-server, plan, project and screenshot tools."""
    for tool in (
        files.write_file,
        files.read_file,
        edits.edit_file,
        files.batch_write_files,
        listing.list_files,
        listing.get_project_structure,
        files.delete_file,
        files.rename_file,
        listing.search_files,
        plan.plan_changes,
        plan.mark_step_complete,
        project.analyze_project_state,
    ):
        register(tool)
    # These bound their own work by the command timeout, the install or the dev-server
    # budget; a sandbox-sized budget would cut them short.
    register(shell.run_command, timeout=None)
    register(shell.install_packages, timeout=None)
    register(devserver.start_dev_server, timeout="dev_server")
    register(devserver.get_dev_server_status)
    register(build.check_build, timeout=None)
    register(publishing.publish_project, timeout=None)
    # Bounded by BUILDER_TIMEOUT_SCREENSHOT, plus starting Chromium.
    register(screenshot.screenshot_preview, timeout=None)


@hookimpl
def register_starters(register: Callable[..., Any]) -> None:
    """Register the static, Vite + React and Astro starters."""
    from builder.starters import BUILTIN_STARTERS, builtin_directory

    for name, description in BUILTIN_STARTERS.items():
        register(name, builtin_directory(name), description=description)


@hookimpl
def register_publishers(register: Callable[..., Any]) -> None:
    """Register the generic git remote, GitHub and Netlify publishers."""
    from builder.publish.github import GitHubPublisher
    from builder.publish.gitremote import GitRemotePublisher
    from builder.publish.netlify import NetlifyPublisher

    register("git", GitRemotePublisher(), description="Push to any git remote over http(s).")
    register(
        "github",
        GitHubPublisher(),
        description="Push to a GitHub repository (created on request) with the user's "
        "GitHub connection.",
    )
    register(
        "netlify",
        NetlifyPublisher(),
        description="Deploy the site (its build output when it builds) to Netlify.",
    )
