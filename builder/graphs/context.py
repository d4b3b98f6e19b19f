"""The run context: what one run of the web-builder graph works with.

Passed as LangGraph's runtime context (``graph.ainvoke(..., context=RunContext(...))``)
and never checkpointed: the sandbox, the lock manager and the database belong to the
process running the turn, not to the thread's durable state.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from builder.locks import LockManager
from builder.persistence.database import Database
from builder.sandbox.base import Sandbox
from builder.sandbox.ignore import IgnoreFile
from builder.settings import Settings, get_settings
from builder.tools.workspace_files import DiskUsage

__all__ = ["RunContext"]


@dataclass
class RunContext:
    """The run context of the web-builder graph.

    Attributes:
        sandbox: The project's live workspace.
        locks: The lock manager file tools use.
        settings: Limits, budgets and timeouts (default: :func:`get_settings`).
        db: Where snapshots and token usage are saved; None runs without persistence
            (the manifest is still kept in state).
        project_id: The project; defaults to the sandbox's.
        run_id: This run's id (idempotency of snapshots and usage on resume).
        message_id: The user message that started the turn, recorded on snapshots.
        max_steps: Overrides ``settings.max_steps`` for this run.
        token_budget: Overrides ``settings.run_token_budget`` for this run.
        disk: The running total of the workspace's bytes the quota checks against
            (walked at the run's first write, then kept by its writes).
        exclusive: The project is this run's alone while it works (the runs service's
            lease on it: no other run is claimed and no hand edit is made meanwhile),
            so the file tools' locks only order this process's tasks, with no database
            round trip per write, and the workspace's record of the version it holds is
            written when the turn ends or the run stops, not at every save.
        resumed: This run continues one that was interrupted. Its first save rescans the
            workspace: a step cut short may have changed files that its checkpoint
            does not record (and running it again may not change them a second time).
        workspace_version: The version the workspace holds, as this run last read or
            saved it (trusted only while ``exclusive``; None: read it from the workspace).
        ignore_file: The workspace's ``.gitignore`` as this run last read it (trusted
            only while ``exclusive``).
        recorded_version: The version this run last wrote into the workspace's own
            record of it (see :func:`~builder.graphs.saving.record_run_version`).
    """

    sandbox: Sandbox
    locks: LockManager
    settings: Settings = field(default_factory=get_settings)
    db: Database | None = None
    project_id: str = ""
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    message_id: uuid.UUID | None = None
    max_steps: int | None = None
    token_budget: int | None = None
    resumed: bool = False
    exclusive: bool = False
    disk: DiskUsage = field(default_factory=DiskUsage)
    workspace_version: int | None = None
    ignore_file: IgnoreFile = field(default_factory=IgnoreFile)
    recorded_version: int | None = None

    def __post_init__(self) -> None:
        if not self.project_id:
            self.project_id = self.sandbox.project_id

    @property
    def step_limit(self) -> int:
        """Most model calls this run may make."""
        return self.max_steps or self.settings.max_steps

    @property
    def tokens_allowed(self) -> int:
        """Most tokens this run may use."""
        return self.token_budget or self.settings.run_token_budget
