"""Confinement of local sandbox commands with bubblewrap.

A confined command sees the project's workspace read-write at ``/workspace``, the
system directories (and the Python interpreter builder runs on) read-only, and a
private ``/tmp`` and home; nothing else of the host's filesystem. It runs in its own
user (mapped to an unprivileged uid), PID, IPC, UTS and network namespaces, in a new
session, and dies with the process that started it: killing the outer ``bwrap``
process kills every process inside the namespace.

One-shot commands get a network namespace of their own with no interface but
loopback, so the host's loopback services (PostgreSQL, Redis, the builder API) are
unreachable. Long-running processes (dev servers) share the host's network so the
preview and screenshot code can reach their port.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["SANDBOX_HOME", "SANDBOX_UID", "WORKSPACE_MOUNT", "Confinement", "bwrap_status"]

log = logging.getLogger(__name__)

WORKSPACE_MOUNT = PurePosixPath("/workspace")
"""Where the workspace appears inside a confined command."""
SANDBOX_HOME = PurePosixPath("/home/sandbox")
"""The private, empty home directory of a confined command."""
SANDBOX_UID = 1000
"""The uid (and gid) a confined command runs as inside its user namespace."""

_SYSTEM_DIRS = ("/usr", "/etc", "/opt", "/usr/local")
_LIB_LINKS = ("bin", "sbin", "lib", "lib32", "lib64")


def _toolchain_dirs() -> list[str]:
    # The interpreter builder runs on may live outside /usr (pyenv under /root).
    prefix = Path(sys.base_prefix)
    if str(prefix).startswith("/usr"):
        return []
    return [str(prefix)]


def inner_path() -> str:
    """``PATH`` inside a confined command."""
    extra = [f"{d}/bin" for d in _toolchain_dirs()]
    return ":".join(["/usr/local/bin", "/usr/bin", "/bin", *extra])


@dataclass(frozen=True, slots=True)
class Confinement:
    """How to wrap a command so it runs confined to one workspace.

    Args:
        workspace: The workspace directory on the host.
        bwrap: The ``bwrap`` executable.
        tmpfs_bytes: Size of the private ``/tmp`` and home each (0 = bwrap's default).
        host_network: Keep the host's network for every command, not only servers.
    """

    workspace: Path
    bwrap: str
    tmpfs_bytes: int = 0
    host_network: bool = False
    """Every command keeps the host's network (``BUILDER_SANDBOX_NETWORK=host``)."""

    def wrap(self, argv: list[str], *, cwd: str, share_network: bool = False) -> list[str]:
        """``bwrap <options> -- argv``, run in ``/workspace/<cwd>``.

        Args:
            argv: The command as it would run unconfined.
            cwd: A workspace-relative directory (already checked by the workspace).
            share_network: Keep the host's network (long-running servers only).
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
        if not (share_network or self.host_network):
            opts.append("--unshare-net")
        for directory in _SYSTEM_DIRS:
            if Path(directory).is_dir():
                opts += ["--ro-bind", directory, directory]
        for name in _LIB_LINKS:
            host = Path("/") / name
            if host.is_symlink():
                opts += ["--symlink", str(host.readlink()), f"/{name}"]
            elif host.is_dir():
                opts += ["--ro-bind", str(host), f"/{name}"]
        for directory in _toolchain_dirs():
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
