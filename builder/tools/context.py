"""What a tool receives when it runs, and where it records what it changed.

A tool declares a keyword-only parameter annotated :class:`ToolContext`; builder
injects the context of the current run there. Nothing is read from globals, so the
same tool serves many projects at once.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from builder.locks import LockManager
from builder.sandbox.base import Sandbox
from builder.settings import Settings
from builder.tools.workspace_files import DiskUsage, WorkspaceFiles

if TYPE_CHECKING:
    from builder.persistence.database import Database

__all__ = [
    "MAX_ERROR_CHARS",
    "MAX_KEPT_BYTES",
    "MAX_RECENT_ERRORS",
    "MAX_TRACKED_FILES",
    "DevServerStatus",
    "EventSink",
    "Plan",
    "PlanStep",
    "ToolContext",
    "ToolEffects",
    "ToolEvent",
]

MAX_TRACKED_FILES = 10_000
MAX_KEPT_BYTES = 4 * 1024 * 1024
"""Most bytes of written content a batch of effects keeps for saving (see ``written``)."""
"""File changes kept between two :meth:`ToolEffects.take` calls; beyond this the
effects only say that the whole workspace must be rescanned."""
MAX_RECENT_ERRORS = 20
"""Tool errors remembered for ``analyze_project_state``."""
MAX_ERROR_CHARS = 300


@dataclass
class PlanStep:
    """One step of the agent's plan."""

    description: str
    done: bool = False
    notes: str | None = None


@dataclass
class Plan:
    """The agent's plan: a goal and ordered steps."""

    goal: str
    steps: list[PlanStep] = field(default_factory=list)

    @property
    def completed(self) -> int:
        """How many steps are done."""
        return sum(step.done for step in self.steps)


@dataclass(frozen=True, slots=True)
class DevServerStatus:
    """The last known state of the project's dev server."""

    running: bool
    command: str
    port: int | None
    preview_url: str | None
    exit_code: int | None = None


@dataclass
class ToolEffects:
    """What tools changed during a run, for the graph to fold into its state.

    File contents never appear here, only hashes: ``files`` maps a path to the
    sha256 of its new content, or None when it was deleted (a rename is a deletion
    plus an addition). The graph calls :meth:`take` after each tools step.
    """

    files: dict[str, str | None] = field(default_factory=dict)
    written: dict[str, bytes] = field(default_factory=dict)
    """The content of small files in ``files`` as written, so that saving them needs no
    read back (up to :data:`MAX_KEPT_BYTES` in all)."""
    rescan: bool = False
    """``files`` is incomplete (a command ran, or more than :data:`MAX_TRACKED_FILES`
    paths changed): rescan the workspace for the manifest."""
    plan: Plan | None = None
    """The current plan; the graph seeds it, plan tools replace or update it."""
    plan_changed: bool = False
    dev_server: DevServerStatus | None = None
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_RECENT_ERRORS))
    """The most recent tool errors, oldest first."""
    failed: bool = False
    """The tool's work failed (a command exited non-zero or timed out) though it answered."""

    def file_written(self, path: str, sha256: str, data: bytes | None = None) -> None:
        """Record that ``path`` now holds content with this hash (``data``, when given)."""
        self._track(path, sha256)
        self.written.pop(path, None)
        kept = sum(len(content) for content in self.written.values())
        if (
            data is not None
            and self.files.get(path) == sha256
            and kept + len(data) <= MAX_KEPT_BYTES
        ):
            self.written[path] = data

    def file_deleted(self, path: str) -> None:
        """Record that ``path`` no longer exists."""
        self._track(path, None)
        self.written.pop(path, None)

    def workspace_changed(self) -> None:
        """Record that files may have changed in ways not tracked here (a command ran)."""
        self.rescan = True

    def set_plan(self, plan: Plan) -> None:
        """Replace the plan (or record an in-place update of it)."""
        self.plan = plan
        self.plan_changed = True

    def error(self, message: str) -> None:
        """Remember a tool error: its first line, cut to :data:`MAX_ERROR_CHARS`.

        The list is bounded; the oldest error is forgotten first.
        """
        first = message.strip().splitlines()[0] if message.strip() else "error"
        self.errors.append(first[:MAX_ERROR_CHARS])

    def take(self) -> ToolEffects:
        """Return the changes recorded so far and start a new batch.

        The plan, dev-server status and recent errors carry over; file changes and
        the plan-changed flag are reset.
        """
        taken = ToolEffects(
            files=self.files,
            written=self.written,
            rescan=self.rescan,
            plan=self.plan,
            plan_changed=self.plan_changed,
            dev_server=self.dev_server,
            errors=deque(self.errors, maxlen=MAX_RECENT_ERRORS),
            failed=self.failed,
        )
        self.files = {}
        self.written = {}
        self.rescan = False
        self.failed = False
        self.plan_changed = False
        return taken

    def _track(self, path: str, sha256: str | None) -> None:
        if path not in self.files and len(self.files) >= MAX_TRACKED_FILES:
            self.rescan = True
            return
        self.files[path] = sha256


@dataclass(frozen=True, slots=True)
class ToolEvent:
    """Progress reported by a running tool (for streaming to the caller)."""

    tool: str
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[ToolEvent], Awaitable[None] | None]
"""Receives tool events; may be a plain function or a coroutine function."""


@dataclass
class ToolContext:
    """The run context injected into every tool call.

    Attributes:
        sandbox: The project's live workspace.
        project_id: The project the run works on.
        settings: Limits, timeouts and output caps.
        locks: The lock manager shared by every tool (file locks, run locks).
        run_id: The run this call belongs to, when there is one.
        effects: Where tools record what they changed.
        on_event: Optional receiver of progress events.
        db: The database, when the run has one (publishing needs it).
        disk: The run's running total of the workspace's bytes, for the quota; None
            walks the workspace at every write.

    Tools change files through :attr:`files`, which applies the same limits, locks
    and compare-and-swap as the built-in tools.
    """

    sandbox: Sandbox
    project_id: str
    settings: Settings
    locks: LockManager
    run_id: str | None = None
    effects: ToolEffects = field(default_factory=ToolEffects)
    on_event: EventSink | None = None
    db: Database | None = None
    disk: DiskUsage | None = None

    @property
    def files(self) -> WorkspaceFiles:
        """The workspace's files behind the built-in tools' guards: limits, per-path
        locks, compare-and-swap, and effects recorded for the next version."""
        return WorkspaceFiles(self)

    async def emit(self, tool: str, kind: str, **data: Any) -> None:
        """Send a progress event to :attr:`on_event`, if one is set."""
        if self.on_event is None:
            return
        result = self.on_event(ToolEvent(tool=tool, kind=kind, data=data))
        if inspect.isawaitable(result):
            await result
