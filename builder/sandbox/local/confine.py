"""Confinement of local sandbox commands with bubblewrap.

A confined command sees the project's workspace read-write at ``/workspace``, the
system directories (and the Python interpreter builder runs on) read-only, and a
private ``/tmp`` and home; nothing else of the host's filesystem. It runs in its own
user (mapped to an unprivileged uid), PID, IPC, UTS and network namespaces, in a new
session, and dies with the process that started it: killing the outer ``bwrap``
process kills every process inside the namespace. A root service starts ``bwrap`` as an
unprivileged host user (:mod:`builder.sandbox.local.owner`), so the sandbox's uid is
that user's outside, not root.

The per-host package cache (:mod:`builder.sandbox.local.packages`) is bound read-write
where npm looks for its cache in the private home.

The network depends on ``BUILDER_SANDBOX_NETWORK`` (:data:`NetworkMode`):

* ``isolated`` (the default where ``pasta`` works): every command and dev server has a
  network namespace of its own with outbound access through user-mode networking
  (:mod:`builder.sandbox.local.network`); the host's loopback services (PostgreSQL,
  Redis, the builder API) are unreachable, and a dev server's port is forwarded to
  ``127.0.0.1`` on the host;
* ``none``: one-shot commands get a namespace with nothing but loopback; dev servers
  share the host's network so the preview can reach their port;
* ``host``: everything shares the host's network, loopback services included.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from builder.sandbox.local.owner import HostUser, reachable
from builder.sandbox.local.packages import PackageCache

__all__ = [
    "SANDBOX_HOME",
    "SANDBOX_UID",
    "WORKSPACE_MOUNT",
    "Confinement",
    "NetworkMode",
    "bwrap_status",
    "network_mode",
]

log = logging.getLogger(__name__)

WORKSPACE_MOUNT = PurePosixPath("/workspace")
"""Where the workspace appears inside a confined command."""
SANDBOX_HOME = PurePosixPath("/home/sandbox")
"""The private, empty home directory of a confined command."""
SANDBOX_UID = 1000
"""The uid (and gid) a confined command runs as inside its user namespace."""

NetworkMode = Literal["isolated", "host", "none"]
"""How confined commands reach the network (``BUILDER_SANDBOX_NETWORK``)."""

_SYSTEM_DIRS = ("/usr", "/etc", "/opt", "/usr/local")
_LIB_LINKS = ("bin", "sbin", "lib", "lib32", "lib64")


def _toolchain_dirs(user: HostUser | None = None) -> list[str]:
    # The interpreter builder runs on may live outside /usr (pyenv under /root); a
    # sandbox user who cannot reach it goes without (bwrap could not bind it).
    prefix = Path(sys.base_prefix)
    if str(prefix).startswith("/usr"):
        return []
    if user is not None and reachable(prefix, user) is not None:
        return []
    return [str(prefix)]


def inner_path(user: HostUser | None = None) -> str:
    """``PATH`` inside a confined command (of ``user``, when it is not the service's)."""
    extra = [f"{d}/bin" for d in _toolchain_dirs(user)]
    return ":".join(["/usr/local/bin", "/usr/bin", "/bin", *extra])


@dataclass(frozen=True, slots=True)
class Confinement:
    """How to wrap a command so it runs confined to one workspace.

    Args:
        workspace: The workspace directory on the host.
        bwrap: The ``bwrap`` executable.
        tmpfs_bytes: Size of the private ``/tmp`` and home each (0 = bwrap's default).
        network: The network mode in effect (``isolated`` only with ``pasta``).
        pasta: The ``pasta`` executable, for ``isolated``.
        user: The host user ``bwrap`` runs as (a root service's sandbox user); None
            runs it as the service's user.
        package_cache: The package cache's host directories to bind
            (:class:`~builder.sandbox.local.packages.PackageCache`); None binds none.
    """

    workspace: Path
    bwrap: str
    tmpfs_bytes: int = 0
    network: NetworkMode = "none"
    pasta: str | None = None
    user: HostUser | None = None
    package_cache: PackageCache | None = None

    def __post_init__(self) -> None:
        if self.network == "isolated" and self.pasta is None:
            raise ValueError("isolated networking needs pasta")

    def own_network(self, *, server: bool) -> bool:
        """Whether a command (or a long-running ``server``) gets its own network namespace."""
        if self.network == "host":
            return False
        return self.network == "isolated" or not server

    def wrap(
        self,
        argv: list[str],
        *,
        cwd: str,
        server: bool = False,
        sync_fds: tuple[int, int] | None = None,
    ) -> list[str]:
        """``bwrap <options> -- argv``, run in ``/workspace/<cwd>``.

        Args:
            argv: The command as it would run unconfined.
            cwd: A workspace-relative directory (already checked by the workspace).
            server: A long-running process (it keeps the host's network in ``none``).
            sync_fds: ``(info, block)``: bwrap writes its namespace's pid to ``info``
                and waits for a byte on ``block`` before running ``argv`` (the time
                to attach ``pasta``).
        """
        rel = PurePosixPath(cwd)
        inner_cwd = WORKSPACE_MOUNT if str(rel) in {".", ""} else WORKSPACE_MOUNT / rel
        opts = [
            self.bwrap,
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_UID),
            "--hostname",
            "sandbox",
            "--die-with-parent",
            "--new-session",
            "--clearenv",
        ]
        if self.own_network(server=server):
            opts.append("--unshare-net")
        if sync_fds is not None:
            opts += ["--info-fd", str(sync_fds[0]), "--block-fd", str(sync_fds[1])]
        for directory in _SYSTEM_DIRS:
            if Path(directory).is_dir():
                opts += ["--ro-bind", directory, directory]
        for name in _LIB_LINKS:
            host = Path("/") / name
            if host.is_symlink():
                opts += ["--symlink", str(host.readlink()), f"/{name}"]
            elif host.is_dir():
                opts += ["--ro-bind", str(host), f"/{name}"]
        for directory in _toolchain_dirs(self.user):
            opts += ["--ro-bind", directory, directory]
        size = ["--size", str(self.tmpfs_bytes)] if self.tmpfs_bytes > 0 else []
        opts += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            *size,
            "--tmpfs",
            "/tmp",  # noqa: S108 - a private tmpfs inside the namespace
            *size,
            "--tmpfs",
            str(SANDBOX_HOME),
            "--bind",
            str(self.workspace),
            str(WORKSPACE_MOUNT),
            *(self.package_cache.bwrap_options(size) if self.package_cache else []),
            "--chdir",
            str(inner_cwd),
            "--",
        ]
        return [*opts, *argv]


@functools.cache
def bwrap_status() -> tuple[str | None, str]:
    """``(path to bwrap, reason)``: the path when confinement works on this host.

    Probed once per process by running ``/bin/true`` in the same namespaces a
    confined command gets; the reason says why confinement is unavailable.
    """
    path = shutil.which("bwrap")
    if path is None:
        return None, "bwrap (Debian package bubblewrap) is not installed"
    probe = Confinement(Path("/"), path).wrap(["/bin/true"], cwd=".")
    # The probe binds "/" as the workspace: harmless for /bin/true.
    try:
        done = subprocess.run(probe, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"bwrap could not run: {exc}"
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        return None, f"bwrap cannot create namespaces: {reason[-1] if reason else done.returncode}"
    return path, "bubblewrap works"


def network_mode(wanted: NetworkMode) -> tuple[NetworkMode, str | None, str | None]:
    """``(mode in effect, pasta path, why it differs from wanted)``.

    ``isolated`` needs ``pasta`` (probed once per process); without it commands fall
    back to the host's network, and the reason says why.
    """
    if wanted != "isolated":
        return wanted, None, None
    from builder.sandbox.local.network import pasta_status

    pasta, reason = pasta_status()
    if pasta is None:
        return "host", None, reason
    return "isolated", pasta, None
