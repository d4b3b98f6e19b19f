"""The local sandbox: a workspace directory per project and child processes on this host.

Files live in ``<data_dir>/workspaces/<project_id>`` and are reached only through
:class:`~builder.sandbox.workspace.Workspace`, which never follows a symlink. Commands
run with a scrubbed environment, resource limits and their own process group
(:mod:`builder.sandbox.local.processes`).

Confined (the default wherever bubblewrap works) each command runs in its own
namespaces with only the workspace writable (:mod:`builder.sandbox.local.confine`).
Unconfined (``BUILDER_SANDBOX_BACKEND=local-unconfined``, for development) a command
can read whatever the service user can.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from builder.errors import DependencyUnavailable, InvalidInput, NotFound
from builder.sandbox.base import CommandResult, FileInfo, LockInstall, ProcessInfo
from builder.sandbox.local.confine import Confinement, bwrap_status, inner_path, network_mode
from builder.sandbox.local.leftovers import ProcessLedger
from builder.sandbox.local.owner import HostUser, adopt, sandbox_user
from builder.sandbox.local.packages import package_cache
from builder.sandbox.local.processes import ChildLimits, run_command
from builder.sandbox.local.servers import ProcessTable
from builder.sandbox.local.trees import INPUTS, NODE_MODULES, TreeCache, tool_versions, tree_cache
from builder.sandbox.paths import check_port, check_project_id
from builder.sandbox.slots import DEFAULT_MAX_PROCESSES
from builder.sandbox.workspace import Workspace
from builder.settings import Settings, get_settings
from builder.timeouts import with_timeout

__all__ = ["LocalSandbox", "confinement_wanted", "workspace_path"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_ADDED = re.compile(r"added (\d+) packages?")
_BACKEND_ERRNOS = {errno.EIO, errno.ENOSPC, errno.EROFS, errno.EDQUOT}


def workspace_path(settings: Settings, project_id: str) -> Path:
    """Where the local workspace of ``project_id`` lives.

    Raises:
        InvalidInput: The project id is not safe as a directory name.
    """
    return settings.data_dir / "workspaces" / check_project_id(project_id)


def confinement_wanted(settings: Settings) -> str | None:
    """The ``bwrap`` path when ``settings`` ask for a confined local sandbox and it works.

    ``local`` means confined wherever bubblewrap works; when it does not, the reason
    is logged (once per process) and commands run unconfined.
    ``local-unconfined`` never confines.
    """
    if settings.sandbox_backend != "local":
        if settings.allow_unconfined_sandbox:
            _warn_unconfined("BUILDER_ALLOW_UNCONFINED_SANDBOX accepts local-unconfined")
        return None
    path, reason = bwrap_status()
    if path is None:
        _warn_unconfined(reason)
    return path


_warned: set[str] = set()


def _warn_unconfined(reason: str) -> None:
    _warn_once(f"local sandbox commands run unconfined: {reason}")


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning("%s", message)


class LocalSandbox:
    """A :class:`~builder.sandbox.base.Sandbox` backed by a local directory.

    Args:
        project_id: The project; also the workspace directory's name.
        settings: Limits, timeouts and the data directory; defaults to
            :func:`~builder.settings.get_settings`.
        max_processes: Most named long-running processes kept at once.
        confined: Run commands inside bubblewrap; None decides from settings
            (:func:`confinement_wanted`).
    """

    def __init__(
        self,
        project_id: str,
        *,
        settings: Settings | None = None,
        max_processes: int = DEFAULT_MAX_PROCESSES,
        confined: bool | None = None,
    ) -> None:
        self._settings = settings or get_settings()
        self._project_id = check_project_id(project_id)
        root = workspace_path(self._settings, project_id)
        self._limits = ChildLimits.from_settings(self._settings)
        bwrap = confinement_wanted(self._settings) if confined is None else None
        if confined:
            bwrap, reason = bwrap_status()
            if bwrap is None:
                raise DependencyUnavailable("sandbox", f"cannot confine commands: {reason}")
        self.confinement: Confinement | None = None
        self.trees: TreeCache | None = None
        user: HostUser | None = None
        if bwrap:
            root.mkdir(parents=True, exist_ok=True)
            user, why = sandbox_user(
                self._settings.data_dir,
                root,
                uid=self._settings.sandbox_uid,
                gid=self._settings.sandbox_gid,
            )
            if user is None and os.geteuid() == 0:
                _warn_once(why)
            if user is not None:
                adopt(root, user)
        self.workspace = Workspace(root, owner=(user.uid, user.gid) if user else None)
        if bwrap:
            network, pasta, fallback = network_mode(self._settings.sandbox_network)
            if fallback is not None:
                _warn_once(f"sandbox commands use the host's network: {fallback}")
            cache_dir = self._settings.package_cache_dir or (
                self._settings.data_dir / "package-cache"
            )
            shared = package_cache(cache_dir, user)
            self.confinement = Confinement(
                self.workspace.root,
                bwrap,
                self._settings.project_quota_bytes,
                network=network,
                pasta=pasta,
                user=user,
                package_cache=shared,
            )
            if shared is not None:
                self.trees = tree_cache(
                    cache_dir / "trees", self._settings.package_tree_cache_bytes, user
                )
        self._processes = ProcessTable(
            self.workspace,
            limits=self._limits,
            max_processes=max_processes,
            confinement=self.confinement,
            ledger=ProcessLedger(
                self._settings.data_dir / "processes" / f"{self._project_id}.json"
            ),
        )

    def __repr__(self) -> str:
        mode = "unconfined"
        if self.confinement is not None:
            user = self.confinement.user
            who = f", uid {user.uid}" if user else ""
            mode = f"confined, {self.confinement.network} network{who}"
        return f"LocalSandbox({self._project_id!r}, root={str(self.workspace.root)!r}, {mode})"

    @property
    def sandbox_id(self) -> str:
        """``local-<project_id>``."""
        return f"local-{self._project_id}"

    @property
    def project_id(self) -> str:
        """The project this sandbox belongs to."""
        return self._project_id

    @property
    def root(self) -> Path:
        """The workspace directory."""
        return self.workspace.root

    async def _run(self, func: Callable[..., T], *args: object, **kwargs: object) -> T:
        try:
            return await with_timeout(
                asyncio.to_thread(func, *args, **kwargs), "sandbox", settings=self._settings
            )
        except OSError as exc:
            raise _map_os_error(exc) from exc

    # --- files -------------------------------------------------------------------
    async def read_file(self, path: str) -> bytes:
        """The bytes of a file. Raises ``NotFound`` when it does not exist."""
        return await self._run(self.workspace.read, path)

    async def write_file(
        self, path: str, data: bytes, *, expected_sha256: str | None = None
    ) -> None:
        """Create or replace a file atomically; see :meth:`Sandbox.write_file`."""
        await self._run(self.workspace.write, path, data, expected_sha256=expected_sha256)

    async def delete_file(self, path: str) -> None:
        """Delete a file, a symlink (never its target) or a directory tree."""
        await self._run(self.workspace.delete, path)

    async def rename_file(self, path: str, new_path: str) -> None:
        """Move a file or directory, creating the target's parent directories."""
        await self._run(self.workspace.rename, path, new_path)

    async def stat(self, path: str) -> FileInfo | None:
        """Facts about one path (a symlink is described, not followed), or None."""
        # In a worker thread like every other disk call: a blocking call on the event
        # loop is refused by servers that watch for them (`langgraph dev`).
        return await self._run(self.workspace.stat, path)

    async def list_files(
        self, path: str = ".", *, recursive: bool = False, include_ignored: bool = False
    ) -> list[FileInfo]:
        """Entries under a directory, sorted by path; see :meth:`Sandbox.list_files`."""
        return await self._run(
            self.workspace.list, path, recursive=recursive, include_ignored=include_ignored
        )

    async def disk_usage(self) -> int:
        """Bytes in regular files, leaving out node_modules and .git."""
        return await self._run(self.workspace.disk_usage)

    # --- commands ----------------------------------------------------------------
    async def exec(
        self,
        command: str,
        *,
        cwd: str = ".",
        timeout: float | None = None,
        output_limit: int | None = None,
    ) -> CommandResult:
        """Run ``/bin/sh -c command`` in the workspace and wait for it.

        On timeout the whole process group is killed (SIGTERM, then SIGKILL) and the
        result has ``timed_out=True`` and ``exit_code=-1``. Processes the command left
        running in the background are killed when it exits; use :meth:`start_process`
        for servers. Each of stdout and stderr keeps at most ``output_limit`` bytes
        (head and tail).
        """
        return await run_command(
            self.workspace,
            command,
            cwd=cwd,
            limits=self._limits,
            timeout=self._settings.timeout_sandbox if timeout is None else timeout,
            output_limit=(
                self._settings.sandbox_output_bytes if output_limit is None else output_limit
            ),
            confinement=self.confinement,
        )

    async def install_from_lock(self, manager: str, *, timeout: float) -> LockInstall | None:
        """``npm ci`` through the host's cache of installed trees.

        A hit puts the kept ``node_modules`` in place without running npm; a miss runs
        a clean ``npm ci`` outside the project, keeps its tree and puts it in place (see
        :mod:`builder.sandbox.local.trees`). The root package's own lifecycle scripts
        are left to the caller. None when the cache cannot serve the project: not
        confined, the cache off, not npm, no lock file, an npm workspaces project or
        local (``file:``) dependencies, or a tree that could not be kept.
        """
        trees, confinement = self.trees, self.confinement
        if trees is None or confinement is None or manager != "npm":
            return None
        inputs = await self._run(self._install_inputs)
        if inputs is None:
            return None
        started = time.monotonic()
        tools = await asyncio.to_thread(tool_versions, manager, inner_path(confinement.user))
        key = trees.key(inputs, tools)
        found = await asyncio.to_thread(trees.lookup, key)
        result: CommandResult | None = None
        if found is None:
            work = await asyncio.to_thread(trees.begin, inputs)
            try:
                result = await run_command(
                    Workspace(work),
                    "npm ci --no-audit --no-fund",
                    cwd=".",
                    limits=self._limits,
                    timeout=timeout,
                    output_limit=self._settings.sandbox_output_bytes,
                    confinement=dataclasses.replace(confinement, workspace=work),
                )
            except BaseException:
                await asyncio.to_thread(trees.discard, work)
                raise
            if not result.ok:
                await asyncio.to_thread(trees.discard, work)
                # A timeout would only repeat; anything else the project's own npm ci
                # reports in the project's terms.
                return LockInstall(result, from_cache=False) if result.timed_out else None
            added = _ADDED.search(result.stdout)
            count = int(added.group(1)) if added else None
            await asyncio.to_thread(trees.store, work, key, packages=count)
            found = await asyncio.to_thread(trees.lookup, key)
            if found is None:
                return None
        tree, stored = found
        try:
            await asyncio.to_thread(self._materialize, trees, tree)
        except OSError as exc:
            log.warning("installed tree %s not used: %s", key[:12], exc)
            return None
        took = time.monotonic() - started
        if result is not None:
            return LockInstall(dataclasses.replace(result, duration_s=took), from_cache=False)
        summary = f"added {stored.packages} package{'' if stored.packages == 1 else 's'}"
        placed = CommandResult("npm ci", exit_code=0, stdout=summary, stderr="", duration_s=took)
        return LockInstall(placed, from_cache=True)

    def _install_inputs(self) -> dict[str, bytes | None] | None:
        inputs: dict[str, bytes | None] = {}
        for name in INPUTS:
            try:
                inputs[name] = self.workspace.read(name)
            except NotFound:
                inputs[name] = None
        manifest, lock = inputs["package.json"], inputs["package-lock.json"]
        if manifest is None or lock is None:
            return None
        try:
            parsed = json.loads(manifest)
        except ValueError:
            return None  # npm ci says what is wrong with it
        if not isinstance(parsed, dict) or "workspaces" in parsed:
            return None
        if b'"link": true' in lock or b'"file:' in lock:
            return None  # local packages are not in the clean install's directory
        return inputs

    def _materialize(self, trees: TreeCache, tree: Path) -> None:
        with contextlib.suppress(NotFound):
            self.workspace.delete(NODE_MODULES)
        fd = self.workspace.open_directory(".")
        try:
            trees.materialize(tree, fd)
        except BaseException:
            with contextlib.suppress(NotFound, OSError):
                self.workspace.delete(NODE_MODULES)
            raise
        finally:
            os.close(fd)

    async def start_process(
        self, name: str, command: str, *, cwd: str = ".", port: int | None = None
    ) -> ProcessInfo:
        """Start a long-running process (replacing one of the same name)."""
        return await self._processes.start(name, command, cwd=cwd, port=port)

    async def stop_process(self, name: str) -> bool:
        """Stop a long-running process and its process group."""
        return await self._processes.stop(name)

    async def process_info(self, name: str, *, log_lines: int = 50) -> ProcessInfo | None:
        """The state and recent output of a long-running process, or None."""
        return self._processes.info(name, log_lines=log_lines)

    async def preview_url(self, port: int) -> str:
        """``http://127.0.0.1:<port>/``."""
        check_port(port)
        return f"http://127.0.0.1:{port}/"

    async def health(self) -> bool:
        """Whether the workspace directory exists and is a directory."""
        return self.workspace.root.is_dir() and not self.workspace.root.is_symlink()

    async def close(self) -> None:
        """Stop every long-running process; the files stay."""
        await self._processes.stop_all()


def _map_os_error(exc: OSError) -> Exception:
    target = exc.filename if isinstance(exc.filename, str) else "a workspace file"
    if exc.errno in _BACKEND_ERRNOS:
        return DependencyUnavailable("sandbox", f"local workspace: {target}: {exc.strerror}")
    return InvalidInput(f"{target}: {exc.strerror or exc}")
