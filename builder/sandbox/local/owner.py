"""The host user confined commands run as when the service runs as root.

bubblewrap maps the sandbox's uid (1000 inside) to the uid of whoever starts it. Started
by a root service, every process inside is root outside: Linux exempts root from
``RLIMIT_NPROC``, and every file a command creates belongs to root. So a root service
starts ``bwrap`` as an unprivileged host user instead (``BUILDER_SANDBOX_UID`` and
``BUILDER_SANDBOX_GID``, no supplementary groups): the namespace is that user's, the
process limit holds, and what a command creates belongs to it.

bubblewrap then resolves every path it binds with that user's rights, so:

* the workspace tree belongs to the sandbox user (files the service writes into it are
  handed over as they are created, :class:`~builder.sandbox.workspace.Workspace`);
* the data directory and its ``workspaces`` directory give the sandbox's *group* the
  right to pass through (``--x``), nothing more: no listing, no reading;
* a directory the sandbox user cannot reach (the interpreter's prefix under ``/root``)
  is left out of the sandbox; when the workspace itself is out of reach, commands run
  as the service's user, as before, and the reason is logged.

The service keeps reading and writing everything a command created (root needs no
permission), so snapshots and file tools are unaffected.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = ["HostUser", "adopt", "reachable", "sandbox_user"]


@dataclass(frozen=True, slots=True)
class HostUser:
    """An unprivileged host user (no supplementary groups)."""

    uid: int
    gid: int

    def can_search(self, st: os.stat_result) -> bool:
        """Whether this user may pass through a directory with these permissions."""
        if st.st_uid == self.uid:
            return bool(st.st_mode & stat.S_IXUSR)
        if st.st_gid == self.gid:
            return bool(st.st_mode & stat.S_IXGRP)
        return bool(st.st_mode & stat.S_IXOTH)


def reachable(path: Path, user: HostUser) -> Path | None:
    """The first directory on the way to ``path`` (itself included) ``user`` cannot pass."""
    current = Path("/")
    for part in path.parts[1:]:
        current = current / part
        try:
            st = os.stat(current)
        except OSError:
            return current
        if stat.S_ISDIR(st.st_mode) and not user.can_search(st):
            return current
    return None


def _let_group_through(directory: Path, user: HostUser) -> None:
    """Give the sandbox's group ``--x`` on a service directory whose group bits are unused."""
    st = os.stat(directory)
    if user.can_search(st) or st.st_mode & stat.S_IRWXG:
        return  # passable already, or its group means something to the operator
    os.chown(directory, -1, user.gid)
    # Pass through only: no listing, no reading, and only for the sandbox's group.
    os.chmod(directory, stat.S_IMODE(st.st_mode) | stat.S_IXGRP)  # noqa: S103


def sandbox_user(
    data_dir: Path, workspace: Path, *, uid: int, gid: int
) -> tuple[HostUser | None, str]:
    """The host user confined commands of ``workspace`` run as, or None and why not.

    Only a root service switches; any other runs commands as itself. The data directory
    and its ``workspaces`` directory are opened to the sandbox's group for passing
    through (see the module docstring).
    """
    if os.geteuid() != 0:
        return None, "the service is not root: commands run as the service's user"
    user = HostUser(uid, gid)
    for directory in (data_dir, data_dir / "workspaces"):
        if directory.is_dir() and not directory.is_symlink():
            _let_group_through(directory, user)
    blocked = reachable(workspace, user)
    if blocked is not None:
        return None, (
            f"uid {uid} cannot pass through {blocked}, so commands run as root outside the "
            "sandbox and the process limit does not hold: put BUILDER_DATA_DIR where every "
            "parent directory is searchable (e.g. /var/lib/builder)"
        )
    return user, f"commands run as uid {uid}, gid {gid} on the host"


def adopt(root: Path, user: HostUser) -> None:
    """Give the workspace tree to ``user`` (no link is followed); once, when it is not theirs.

    Files the service's user owns with more than one link are left alone: they are hard
    links into the cache of installed trees (:mod:`builder.sandbox.local.trees`), which
    must stay unwritable to every sandbox.
    """
    st = os.lstat(root)
    if (st.st_uid, st.st_gid) == (user.uid, user.gid):
        return
    service = os.geteuid()
    for parent, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = os.path.join(parent, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and st.st_uid == service:
                continue  # a hard link into the cache of installed trees stays read-only
            os.lchown(path, user.uid, user.gid)
    os.chown(root, user.uid, user.gid)
    os.chmod(root, 0o700)
