"""Workspace paths: the lexical rules every sandbox applies before touching a file.

A workspace path is relative, ``/``-separated and stays inside the workspace. This
module turns one into its components or refuses it with
:class:`~builder.errors.PathOutsideSandbox` (absolute, escaping, NUL, backslash) or
:class:`~builder.errors.InvalidInput` (control characters, over-long names, not UTF-8).

The lexical check is necessary but not sufficient: a symlink inside the workspace can
still lead outside. The local sandbox therefore opens every component without
following symlinks (:mod:`builder.sandbox.workspace`); the E2B sandbox keeps paths under
its own workspace root on a machine that holds nothing but the project.
"""

from __future__ import annotations

import re

from builder.errors import InvalidInput, PathOutsideSandbox

__all__ = [
    "MAX_NAME_BYTES",
    "MAX_PATH_BYTES",
    "SKIPPED_DIRS",
    "STATE_DIR",
    "check_port",
    "check_process_name",
    "check_project_id",
    "join_parts",
    "split_path",
]

MAX_NAME_BYTES = 255
"""Longest file name (Linux ``NAME_MAX``)."""
MAX_PATH_BYTES = 4096
"""Longest relative path (Linux ``PATH_MAX``)."""
STATE_DIR = ".builder"
"""Builder's own notes about a workspace (the version it holds); never a project file."""
SKIPPED_DIRS = frozenset({"node_modules", ".git", ".venv", "__pycache__", STATE_DIR})
"""Directories listings and disk usage leave out: installed or tool-managed, not written
by the agent file by file."""

_CONTROL = re.compile(r"[\x01-\x1f\x7f]")
_PROJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_PROCESS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def split_path(path: str, *, allow_root: bool = False) -> tuple[str, ...]:
    """The components of a workspace path, after the lexical safety checks.

    ``.`` and empty components are dropped and ``a/../b`` collapses to ``b``; a ``..``
    that would climb above the workspace root is refused.

    Args:
        path: A path relative to the workspace root.
        allow_root: Whether the workspace root itself (``"."``, ``""``) is acceptable.

    Returns:
        The components, outermost first; empty for the root.

    Raises:
        PathOutsideSandbox: The path is absolute, escapes the root, contains a NUL byte
            or a backslash.
        InvalidInput: The path is not a string, not valid UTF-8, contains control
            characters, is too long, or names the root when ``allow_root`` is False.
    """
    if not isinstance(path, str):
        raise InvalidInput(f"a path must be a string, not {type(path).__name__}")
    if "\x00" in path:
        raise PathOutsideSandbox(path, "contains a NUL byte")
    if "\\" in path:
        # A backslash is an ordinary character on Linux but a separator on Windows
        # and in many tools' minds; refusing it avoids "a\..\..\x" surprises.
        raise PathOutsideSandbox(path, "contains a backslash; use / as the separator")
    if path.startswith("/"):
        raise PathOutsideSandbox(path, "is absolute; paths are relative to the workspace")
    if path.startswith("~"):
        raise PathOutsideSandbox(path, "starts with ~; paths are relative to the workspace")
    if _CONTROL.search(path):
        raise InvalidInput(f"path {path!r} contains control characters")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"path {path!r} is not valid UTF-8") from None
    if len(encoded) > MAX_PATH_BYTES:
        raise InvalidInput(f"path is {len(encoded)} bytes; the limit is {MAX_PATH_BYTES}")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise PathOutsideSandbox(path, "climbs above the workspace root")
            parts.pop()
            continue
        if len(part.encode("utf-8")) > MAX_NAME_BYTES:
            raise InvalidInput(f"a name in {path!r} is longer than {MAX_NAME_BYTES} bytes")
        parts.append(part)
    if not parts and not allow_root:
        raise InvalidInput(f"path {path!r} names the workspace root, not a file")
    return tuple(parts)


def join_parts(parts: tuple[str, ...]) -> str:
    """The display form of a split path (``"."`` for the root)."""
    return "/".join(parts) if parts else "."


def check_project_id(project_id: str) -> str:
    """Return ``project_id`` when it is safe as one directory name.

    Raises:
        InvalidInput: It is empty, too long, or has characters other than letters,
            digits, ``.``, ``_`` and ``-`` (or starts with one of the last three).
    """
    if not isinstance(project_id, str) or not _PROJECT_ID.fullmatch(project_id):
        raise InvalidInput(
            f"project id {project_id!r} must be 1-128 letters, digits, '.', '_' or '-' "
            "and start with a letter or digit"
        )
    return project_id


def check_process_name(name: str) -> str:
    """Return ``name`` when it is a valid long-running process name.

    Raises:
        InvalidInput: It is empty, longer than 64 characters or has unusual characters.
    """
    if not isinstance(name, str) or not _PROCESS_NAME.fullmatch(name):
        raise InvalidInput(
            f"process name {name!r} must be 1-64 letters, digits, '.', '_' or '-' "
            "and start with a letter or digit"
        )
    return name


def check_port(port: int | None) -> None:
    """Refuse a port outside 1-65535 (None passes: the sandbox will choose)."""
    if port is not None and (not isinstance(port, int) or not 0 < port < 65536):
        raise InvalidInput(f"port {port!r} is not between 1 and 65535")
