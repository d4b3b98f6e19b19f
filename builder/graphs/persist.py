"""The persist node: file snapshots and token usage, after every step.

After a step that changed files it saves a snapshot of exactly the changed paths
(content read from the sandbox, stored as content-addressed blobs) on top of the version
the workspace holds — a workspace that is not at the latest version is refused and
refreshed, never saved as the newest; after every model
call it records the call's tokens. Both are idempotent per (run, step), so a step
re-run after a crash saves nothing twice. At the end of a turn it prunes the
checkpointed conversation to the context budget — the full conversation is in the
``messages`` table, so nothing is lost.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from langchain_core.messages import AIMessage, RemoveMessage
from langgraph.runtime import Runtime

from builder.errors import (
    AlreadyExists,
    InvalidInput,
    NotFound,
    PathOutsideSandbox,
    StaleWorkspace,
)
from builder.graphs.agent import context_window
from builder.graphs.context import RunContext
from builder.graphs.state import WebBuilderState
from builder.log import get_logger
from builder.persistence.files import (
    record_workspace_version,
    sync_workspace,
    workspace_version,
)
from builder.persistence.snapshots import save_snapshot
from builder.persistence.usage import record_usage
from builder.sandbox.base import Sandbox

__all__ = ["PersistNode", "scan_workspace"]

_log = get_logger("builder.graphs.persist")


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


class PersistNode:
    """Saves what changed since the last snapshot and records the step's tokens."""

    async def __call__(
        self, state: WebBuilderState, runtime: Runtime[RunContext]
    ) -> dict[str, Any]:
        ctx = runtime.context
        update: dict[str, Any] = {}
        manifest = dict(state.get("files", {}))
        if state.get("rescan") or ctx.resumed:
            ctx.resumed = False
            scanned = await scan_workspace(ctx.sandbox)
            if changes := manifest_changes(manifest, scanned):
                update["files"] = changes
            manifest = scanned
            update["rescan"] = False
        saved = state.get("saved_files", {})
        step = state.get("run_steps", 0)
        if changed := manifest_changes(saved, manifest):
            version, manifest = await self._snapshot(ctx, changed, manifest, step)
            update["saved_files"] = manifest
            if version is not None:
                update["snapshot_version"] = version
                runtime.stream_writer(
                    {"event": "snapshot", "version": version, "paths": sorted(changed)}
                )
        usage = state.get("pending_usage")
        if usage is not None:
            await self._record_usage(ctx, usage)
            update["pending_usage"] = None
        messages = state.get("messages", [])
        last = messages[-1] if messages else None
        if isinstance(last, AIMessage) and not last.tool_calls:
            update["build_status"] = "done"
            if state.get("stop_reason") is None:
                update["stop_reason"] = "done"
            window = context_window(messages, ctx.settings.context_token_budget)
            keep = {m.id for m in window}
            removed = [RemoveMessage(id=m.id) for m in messages if m.id and m.id not in keep]
            if removed:
                update["messages"] = removed
        return update

    async def _snapshot(
        self, ctx: RunContext, changed: dict[str, str | None], manifest: dict[str, str], step: int
    ) -> tuple[int | None, dict[str, str]]:
        if ctx.db is None:
            return None, manifest
        contents: dict[str, bytes | None] = {}
        actual = dict(manifest)
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
                actual.pop(path, None)
                continue
            contents[path] = data
            actual[path] = hashlib.sha256(data).hexdigest()
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
            )
        except StaleWorkspace:
            # Another process saved a newer version: this copy must not become the
            # newest. Refresh it so the next turn starts from the real latest files.
            await sync_workspace(ctx.db, project_id=project_id, sandbox=ctx.sandbox, force=True)
            raise
        if snapshot is not None:
            await record_workspace_version(ctx.sandbox, snapshot.version)
        return (snapshot.version if snapshot else None), actual

    async def _record_usage(self, ctx: RunContext, usage: Any) -> None:
        if ctx.db is None:
            return
        try:
            await record_usage(
                ctx.db,
                project_id=uuid.UUID(ctx.project_id),
                run_id=ctx.run_id,
                step=usage["step"],
                model=usage["model"],
                prompt_tokens=usage["input_tokens"],
                completion_tokens=usage["output_tokens"],
                cache_read_tokens=usage.get("cache_read_tokens", 0),
                cache_write_tokens=usage.get("cache_write_tokens", 0),
            )
        except AlreadyExists:  # this step was recorded before a crash; resume records once
            _log.debug("usage.already_recorded", run_id=ctx.run_id, step=usage["step"])


def _summary(changed: dict[str, str | None]) -> str:
    written = sorted(p for p, sha in changed.items() if sha is not None)
    deleted = sorted(p for p, sha in changed.items() if sha is None)
    parts = []
    if written:
        parts.append("wrote " + ", ".join(written[:5]) + (" …" if len(written) > 5 else ""))
    if deleted:
        parts.append("deleted " + ", ".join(deleted[:5]) + (" …" if len(deleted) > 5 else ""))
    return "; ".join(parts)
