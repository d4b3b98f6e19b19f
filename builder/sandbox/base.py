"""The sandbox protocol: where the agent's files live and its commands run.

A sandbox is one project's live workspace. Implementations: :mod:`builder.sandbox.local`
(a directory per project, the default) and :mod:`builder.sandbox.e2b` (an E2B cloud
sandbox). Sandboxes are cattle: one can expire or be evicted, and is recreated from the
project's latest snapshot.

Paths are always relative to the workspace root, with ``/`` separators. Every
implementation rejects absolute paths, ``..`` escapes, NUL bytes and symlinks that lead
outside the workspace with :class:`~builder.errors.PathOutsideSandbox`, checked when the
file is used, not only when the path is parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = ["CachesInstalls", "CommandResult", "FileInfo", "LockInstall", "ProcessInfo", "Sandbox"]


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One entry of a workspace listing."""

    path: str
    """Relative to the workspace root, ``/``-separated."""
    size: int
    """Bytes (0 for directories)."""
    is_dir: bool
    modified: float
    """Modification time, seconds since the epoch."""
    special: str | None = None
    """For an entry that is neither a regular file nor a directory: ``symlink``,
    ``fifo``, ``socket`` or ``device``. Commands can make these in a workspace; builder
    lists them with a note but never reads, saves or follows them."""

    @property
    def is_file(self) -> bool:
        """A regular file: something whose content can be read and saved."""
        return not self.is_dir and self.special is None


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a finished (or killed) command left behind."""

    command: str
    exit_code: int
    """The exit status; negative for a signal, -1 when it was killed on timeout."""
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    truncated_bytes: int = 0
    """How many bytes of output were cut to stay within the output cap."""

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.exit_code == 0 and not self.timed_out


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """A long-running process (a dev server) and its recent output."""

    name: str
    command: str
    running: bool
    exit_code: int | None
    port: int | None
    preview_url: str | None
    started_at: float
    logs: list[str] = field(default_factory=list)
    """The most recent output lines (a bounded ring buffer), oldest first."""


@runtime_checkable
class Sandbox(Protocol):
    """One project's workspace: files, commands, long-running processes.

    Every method is a coroutine; implementations bound each call with the configured
    timeouts. Errors are from :mod:`builder.errors`: ``PathOutsideSandbox``,
    ``NotFound`` (missing file), ``InvalidInput``, ``ConcurrentModification``,
    ``OperationTimeout``, ``DependencyUnavailable`` (the backend is gone).
    """

    @property
    def sandbox_id(self) -> str:
        """The backend's id for this sandbox (a directory name, an E2B sandbox id)."""
        ...

    @property
    def project_id(self) -> str:
        """The project this sandbox belongs to."""
        ...

    async def read_file(self, path: str) -> bytes:
        """The bytes of a file. Raises ``NotFound`` when it does not exist."""
        ...

    async def write_file(
        self, path: str, data: bytes, *, expected_sha256: str | None = None
    ) -> None:
        """Create or replace a file atomically, creating parent directories.

        Args:
            path: Relative path of the file.
            data: New content.
            expected_sha256: When given, write only if the file's current content has
                this hash (``""`` means "the file must not exist"); otherwise raise
                ``ConcurrentModification`` and leave the file as it is.
        """
        ...

    async def delete_file(self, path: str) -> None:
        """Delete a file or a directory tree. Raises ``NotFound`` when missing."""
        ...

    async def rename_file(self, path: str, new_path: str) -> None:
        """Move a file or directory, creating the target's parent directories.

        Raises ``NotFound`` when the source is missing and ``InvalidInput`` when the
        target exists.
        """
        ...

    async def stat(self, path: str) -> FileInfo | None:
        """Facts about one path, or None when it does not exist."""
        ...

    async def list_files(
        self, path: str = ".", *, recursive: bool = False, include_ignored: bool = False
    ) -> list[FileInfo]:
        """Entries under a directory, sorted by path.

        ``node_modules`` and dot-git are always skipped; what the workspace's root
        ``.gitignore`` matches (build output) is skipped unless ``include_ignored``
        (:mod:`builder.sandbox.ignore`).
        """
        ...

    async def disk_usage(self) -> int:
        """Bytes used by files in the workspace (for the per-project quota)."""
        ...

    async def exec(
        self,
        command: str,
        *,
        cwd: str = ".",
        timeout: float | None = None,
        output_limit: int | None = None,
    ) -> CommandResult:
        """Run a shell command in the workspace and wait for it.

        On timeout the whole process group is killed and the result has
        ``timed_out=True``; output beyond ``output_limit`` bytes is cut.
        """
        ...

    async def start_process(
        self, name: str, command: str, *, cwd: str = ".", port: int | None = None
    ) -> ProcessInfo:
        """Start a long-running process (replacing one of the same name).

        ``port`` is where it will listen (chosen by the sandbox when None) and is
        passed to the command as ``PORT``; ``{port}`` in the command is replaced too.
        """
        ...

    async def stop_process(self, name: str) -> bool:
        """Stop a long-running process and its children; False when none was running."""
        ...

    async def process_info(self, name: str, *, log_lines: int = 50) -> ProcessInfo | None:
        """The state and recent output of a long-running process, or None."""
        ...

    async def preview_url(self, port: int) -> str:
        """The URL where a server listening on ``port`` inside the sandbox is reachable."""
        ...

    async def health(self) -> bool:
        """Whether the sandbox is alive and usable."""
        ...

    async def close(self) -> None:
        """Stop every process and release the backend (files of a local sandbox stay)."""
        ...


@dataclass(frozen=True, slots=True)
class LockInstall:
    """An install from the lock file that a sandbox ran through its cache of trees."""

    result: CommandResult
    """The clean install's result (a miss), or a summary of the tree put in place."""
    from_cache: bool
    """The dependency tree was an installed tree kept from an earlier install."""


@runtime_checkable
class CachesInstalls(Protocol):
    """A sandbox that keeps installed dependency trees across projects (optional)."""

    async def install_from_lock(self, manager: str, *, timeout: float) -> LockInstall | None:
        """Install the lock file's dependencies through the cache of installed trees.

        The root package's own lifecycle scripts are not run (the caller runs them in
        the project). None when the cache cannot serve this project (no lock file, a
        package manager it does not handle, a workspaces project, the cache off): the
        caller then installs the usual way.
        """
        ...
