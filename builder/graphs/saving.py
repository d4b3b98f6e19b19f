"""Saving a step: file snapshots and token usage, in one transaction.

The tools node saves at the end of every model step, in the same graph step as the
step's last tool call (a tool call is two checkpointed nodes: agent and tools); the
persist node ends a turn. A save stores exactly the paths changed since the last
snapshot (``unsaved`` in the state; content read from the sandbox, stored as
content-addressed blobs) on top of the version the workspace holds — a workspace that
is not at the latest version is refused and refreshed, never saved as the newest —
and the model call's tokens, both in one transaction. It is idempotent per (run, step),
so a step re-run after a crash saves nothing twice. At the end of a turn the persist
node (:mod:`builder.graphs.persist`) also prunes the conversation.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from langgraph.runtime import Runtime

from builder.errors import (
    AlreadyExists,
    InvalidInput,
    NotFound,
    PathOutsideSandbox,
    StaleWorkspace,
)
from builder.graphs.context import RunContext
from builder.graphs.state import WebBuilderState, merge_manifest
from builder.log import get_logger
from builder.persistence.files import (
    record_workspace_version,
    sync_workspace,
    workspace_version,
)
from builder.persistence.snapshots import save_snapshot
from builder.persistence.usage import record_usage, usage_values
from builder.sandbox.base import Sandbox

__all__ = ["StepSaver", "manifest_changes", "scan_workspace"]

_log = get_logger("builder.graphs.saving")


async def scan_workspace(sandbox: Sandbox) -> dict[str, str]:
    """The manifest of a workspace: every regular file's path and sha256.

    Symlinks, FIFOs and other special entries a command made are left out (they are
    never saved), and so is a file that turns into one while the scan runs.
    """
    manifest: dict[str, str] = {}
    for info in await sandbox.list_files(".", recursive=True):
        if not info.is_file:
            continue
        try:
            data = await sandbox.read_file(info.path)
        except (NotFound, PathOutsideSandbox, InvalidInput):
            continue  # gone, or replaced by a link or a FIFO since the listing
        manifest[info.path] = hashlib.sha256(data).hexdigest()
    return manifest


def manifest_changes(old: dict[str, str], new: dict[str, str]) -> dict[str, str | None]:
    """What turns manifest ``old`` into ``new``: changed paths, None for removed ones."""
    changes: dict[str, str | None] = {p: sha for p, sha in new.items() if old.get(p) != sha}
    changes.update({p: None for p in old if p not in new})
    return changes


class StepSaver:
    """Saves what changed since the last snapshot and records the step's tokens."""

    async def save(
        self,
        state: WebBuilderState,
        runtime: Runtime[RunContext],
        *,
        files: dict[str, str | None] | None = None,
        rescan: bool = False,
    ) -> dict[str, Any]:
        """Save a step: the state updates that record it.

        Args:
            state: The state before the node's own update.
            runtime: The node's runtime (run context and stream writer).
            files: Manifest changes the node itself made (on top of ``state``).
            rescan: The node ran a command: rebuild the manifest from the workspace.
        """
        ctx = runtime.context
        update: dict[str, Any] = {}
        manifest = merge_manifest(state.get("files"), files)
        unsaved = {**state.get("unsaved", {}), **(files or {})}
        if rescan or state.get("rescan") or ctx.resumed:
            ctx.resumed = False
            scanned = await scan_workspace(ctx.sandbox)
            scan_changes = manifest_changes(manifest, scanned)
            unsaved.update(scan_changes)
            files = {**(files or {}), **scan_changes}
            manifest = scanned
            update["rescan"] = False
        if files:
            update["files"] = files
        step = state.get("run_steps", 0)
        usage = state.get("pending_usage")
        if usage is not None:
            update["pending_usage"] = None
        if unsaved and ctx.db is not None:
            version, written = await self._snapshot(ctx, unsaved, step, usage)
            if written:
                # What the workspace really holds, when a file vanished or turned into
                # a link since the tool wrote it.
                update["files"] = {**update.get("files", {}), **written}
            if version is not None:
                update["snapshot_version"] = version
                runtime.stream_writer(
                    {"event": "snapshot", "version": version, "paths": sorted(unsaved)}
                )
        elif usage is not None:
            await self._record_usage(ctx, usage)
        if state.get("unsaved") or unsaved:
            update["unsaved"] = {}
        return update

    async def _snapshot(
        self, ctx: RunContext, changed: dict[str, str | None], step: int, usage: Any
    ) -> tuple[int | None, dict[str, str | None]]:
        """Save ``changed``: the new version and manifest corrections."""
        assert ctx.db is not None
        contents: dict[str, bytes | None] = {}
        corrections: dict[str, str | None] = {}
        for path, sha in changed.items():
            if sha is None:
                contents[path] = None
                continue
            try:
                data = await ctx.sandbox.read_file(path)
            except (NotFound, PathOutsideSandbox, InvalidInput):
                # Gone since the tool wrote it, or now a link or a FIFO (never saved):
                # snapshot what is really there.
                contents[path] = None
                corrections[path] = None
                continue
            contents[path] = data
            digest = hashlib.sha256(data).hexdigest()
            if digest != sha:
                corrections[path] = digest
        project_id = uuid.UUID(ctx.project_id)
        try:
            snapshot = await save_snapshot(
                ctx.db,
                project_id=project_id,
                changes=contents,
                message_id=ctx.message_id,
                run_id=ctx.run_id,
                idempotency_key=f"{ctx.run_id}:{step}",
                summary=_summary(changed),
                base_version=await workspace_version(ctx.sandbox),
                usage=None if usage is None else _usage_row(ctx, usage),
            )
        except StaleWorkspace:
            # Another process saved a newer version: this copy must not become the
            # newest. Refresh it so the next turn starts from the real latest files.
            await sync_workspace(ctx.db, project_id=project_id, sandbox=ctx.sandbox, force=True)
            raise
        if snapshot is not None:
            await record_workspace_version(ctx.sandbox, snapshot.version)
        return (snapshot.version if snapshot else None), corrections

    async def _record_usage(self, ctx: RunContext, usage: Any) -> None:
        if ctx.db is None:
            return
        try:
            await record_usage(ctx.db, **_usage_row(ctx, usage))
        except AlreadyExists:  # this step was recorded before a crash; resume records once
            _log.debug("usage.already_recorded", run_id=ctx.run_id, step=usage["step"])


def _usage_row(ctx: RunContext, usage: Any) -> dict[str, Any]:
    return usage_values(project_id=uuid.UUID(ctx.project_id), run_id=ctx.run_id, tokens=usage)


def _summary(changed: dict[str, str | None]) -> str:
    written = sorted(p for p, sha in changed.items() if sha is not None)
    deleted = sorted(p for p, sha in changed.items() if sha is None)
    parts = []
    if written:
        parts.append("wrote " + ", ".join(written[:5]) + (" …" if len(written) > 5 else ""))
    if deleted:
        parts.append("deleted " + ", ".join(deleted[:5]) + (" …" if len(deleted) > 5 else ""))
    return "; ".join(parts)
