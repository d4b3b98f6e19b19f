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
from collections.abc import Mapping
from typing import Any

from langgraph._internal._constants import CONFIG_KEY_DURABILITY
from langgraph.config import get_config
from langgraph.constants import CONFIG_KEY_CHECKPOINTER
from langgraph.runtime import Runtime

from builder.errors import (
    InvalidInput,
    NotFound,
    PathOutsideSandbox,
    StaleWorkspace,
)
from builder.graphs.checkpointer import TTLCheckpointer
from builder.graphs.context import RunContext
from builder.graphs.state import WebBuilderState, merge_manifest
from builder.log import get_logger
from builder.persistence.files import (
    record_workspace_version,
    sync_workspace,
    workspace_version,
)
from builder.persistence.snapshots import save_step, step_save, step_saved
from builder.persistence.usage import usage_values
from builder.sandbox.base import Sandbox
from builder.sandbox.ignore import GITIGNORE, ignored_writes

__all__ = ["StepSaver", "manifest_changes", "record_run_version", "scan_workspace"]

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
        written: Mapping[str, bytes] | None = None,
    ) -> dict[str, Any]:
        """Save a step: the state updates that record it.

        Args:
            state: The state before the node's own update.
            runtime: The node's runtime (run context and stream writer).
            files: Manifest changes the node itself made (on top of ``state``).
            rescan: The node ran a command: rebuild the manifest from the workspace.
            written: The content the node wrote, by path (saved without reading it back
                when its hash is the manifest's).
        """
        ctx = runtime.context
        update: dict[str, Any] = {}
        manifest = merge_manifest(state.get("files"), files)
        unsaved = {**state.get("unsaved", {}), **(files or {})}
        rescanned = bool(rescan or state.get("rescan") or ctx.resumed)
        if rescanned:
            ctx.resumed = False
            scanned = await scan_workspace(ctx.sandbox)
            scan_changes = manifest_changes(manifest, scanned)
            unsaved.update(scan_changes)
            files = {**(files or {}), **scan_changes}
            manifest = scanned
            update["rescan"] = False
        kept = None
        if ctx.exclusive:  # nothing but this run changes the workspace: read it once
            kept = ctx.ignore_file
            if rescanned or GITIGNORE in unsaved:
                kept.forget()
        ignored = await ignored_writes(ctx.sandbox, unsaved, kept=kept)
        if ignored:  # written by a file tool under a path the .gitignore lists
            unsaved = {p: sha for p, sha in unsaved.items() if p not in ignored}
            files = {p: sha for p, sha in (files or {}).items() if p not in ignored}
        if files:
            update["files"] = files
        step = state.get("run_steps", 0)
        usage = state.get("pending_usage")
        if usage is not None:
            update["pending_usage"] = None
        if (unsaved or usage is not None) and ctx.db is not None:
            version, corrected = await self._save(runtime, unsaved, step, usage, written or {})
            if corrected:
                # What the workspace really holds, when a file vanished or turned into
                # a link since the tool wrote it.
                update["files"] = {**update.get("files", {}), **corrected}
            if version is not None and unsaved:
                update["snapshot_version"] = version
                runtime.stream_writer(
                    {"event": "snapshot", "version": version, "paths": sorted(unsaved)}
                )
        if state.get("unsaved") or "unsaved" not in state:
            # Not written again (a checkpoint blob) when it was empty already.
            update["unsaved"] = {}
        return update

    async def _save(
        self,
        runtime: Runtime[RunContext],
        changed: dict[str, str | None],
        step: int,
        usage: Any,
        written: Mapping[str, bytes],
    ) -> tuple[int | None, dict[str, str | None]]:
        """Save ``changed`` and the step's usage: the version and manifest corrections.

        Under a checkpointer that can carry it (:func:`_carrier`), the save is committed
        with this node's writes, in their transaction: the version is then known before
        it is (``base + 1``), and the workspace records it once it is committed.
        """
        ctx = runtime.context
        assert ctx.db is not None
        db = ctx.db
        contents: dict[str, bytes | None] = {}
        corrections: dict[str, str | None] = {}
        for path, sha in changed.items():
            if sha is None:
                contents[path] = None
                continue
            known = written.get(path)
            if known is not None and hashlib.sha256(known).hexdigest() == sha:
                contents[path] = known  # just written by this node
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
        base = await _workspace_version(ctx) if changed else None
        save = step_save(
            project_id=project_id,
            changes=contents,
            message_id=ctx.message_id,
            run_id=ctx.run_id,
            idempotency_key=f"{ctx.run_id}:{step}",
            summary=_summary(changed),
            base_version=base,
            usage=None if usage is None else _usage_row(ctx, usage),
        )

        async def saved(row: Mapping[str, Any]) -> int | None:
            version = save.outcome(row)
            if row["repeated"] is not None:  # a step run again after a crash
                _log.debug("step.saved_before", run_id=ctx.run_id, step=step, version=version)
            if version is not None and changed:
                ctx.workspace_version = version
            await step_saved(db, save, row)
            return version

        async def recorded() -> None:
            # After the commit, never before: a workspace may say it holds an older
            # version than it does (the next sync restores the same files), never a
            # newer one. A run that has the workspace to itself records it when it
            # ends (record_run_version), not at every step.
            if changed and not ctx.exclusive:
                await record_run_version(ctx)

        async def refused(error: BaseException) -> BaseException | None:
            ctx.workspace_version = None
            if isinstance(error, StaleWorkspace):
                # Another process saved a newer version: this copy must not become the
                # newest. Refresh it so the next turn starts from the real latest files.
                await sync_workspace(db, project_id=project_id, sandbox=ctx.sandbox, force=True)
            return None

        carrier = _carrier(runtime)
        if carrier is not None and (base is not None or not changed):

            async def settle(
                row: Mapping[str, Any] | None, error: BaseException | None
            ) -> BaseException | None:
                if row is not None:
                    await saved(row)
                    return None
                stale = save.refusal(getattr(getattr(error, "diag", None), "constraint_name", None))
                await refused(stale or error)  # type: ignore[arg-type]
                return stale

            info = runtime.execution_info
            assert info is not None and info.thread_id is not None
            carrier.carry(
                info.thread_id,
                info.task_id,
                save.statement,
                save.params,
                settle,
                None if ctx.exclusive else recorded,
            )
            return (None if base is None else base + 1), corrections
        try:
            row = await save_step(db, save)
        except StaleWorkspace as exc:
            await refused(exc)
            raise
        version = await saved(row)
        await recorded()
        return version, corrections


async def record_run_version(ctx: RunContext) -> None:
    """Write the version the run saved last into its workspace, unless it is there.

    Every save of a run records it, but a run with the workspace to itself
    (``RunContext.exclusive``) only when the turn ends (the persist node) and when the
    run stops, whatever stopped it (the runs service): until then the workspace says it
    holds an older version, which costs a restore of the same files if the process dies
    meanwhile, and never a newer one.
    """
    version = ctx.workspace_version
    if version is not None and version != ctx.recorded_version:
        await record_workspace_version(ctx.sandbox, version)
        ctx.recorded_version = version


async def _workspace_version(ctx: RunContext) -> int | None:
    """The version the workspace holds: read from it, or remembered from this run's
    last save while the run has the workspace to itself (``RunContext.exclusive``)."""
    if ctx.exclusive and ctx.workspace_version is not None:
        return ctx.workspace_version
    ctx.workspace_version = await workspace_version(ctx.sandbox)
    return ctx.workspace_version


def _carrier(runtime: Runtime[RunContext]) -> TTLCheckpointer | None:
    """The checkpointer that commits a node's save with the node's writes, if any.

    That is the run's :class:`TTLCheckpointer` on a pool (as under the runs service, on
    the project's database), when the run stores each task's writes as it ends
    (durability ``"sync"`` or ``"async"``); otherwise the node saves on its own.
    """
    info = runtime.execution_info
    # A task of the top graph (its namespace is its own, ``node:task``): a subgraph's
    # writes are stored under its parent's namespace.
    if info is None or info.thread_id is None or "|" in info.checkpoint_ns:
        return None
    try:
        configurable = get_config().get("configurable") or {}
    except RuntimeError:  # not inside a graph's node
        return None
    checkpointer = configurable.get(CONFIG_KEY_CHECKPOINTER)
    durability = configurable.get(CONFIG_KEY_DURABILITY)
    if (
        isinstance(checkpointer, TTLCheckpointer)
        and checkpointer.carries_statements
        and durability in ("sync", "async")
    ):
        return checkpointer
    return None


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
