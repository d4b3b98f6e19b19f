"""A workspace directory on the local disk, touched only through safe file descriptors.

Every operation opens the workspace root, then each path component relative to the
previous one with ``O_NOFOLLOW | O_DIRECTORY``, and acts on the last component relative
to its parent's descriptor (``openat``, ``renameat``, ``unlinkat``). A symlink anywhere
in the path is therefore refused at the moment of use — also one swapped in after the
path was checked — and nothing outside the workspace can be reached. Symlinks are never
followed, even ones that point inside the workspace; deleting or renaming a symlink
acts on the link itself. As a last check the parent directory's descriptor is resolved
through ``/proc/self/fd`` and must still lie inside the workspace (a directory moved out
meanwhile is refused).

The methods are blocking; :class:`~builder.sandbox.local.LocalSandbox` runs them in a
worker thread.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import secrets
import shutil
import stat as stat_mod
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from functools import cache
from pathlib import Path

from builder.errors import (
    ConcurrentModification,
    InvalidInput,
    LimitExceeded,
    NotFound,
    PathOutsideSandbox,
)
from builder.sandbox.base import FileInfo
from builder.sandbox.ignore import GITIGNORE, IgnoreRules, ignore_rules
from builder.sandbox.paths import SKIPPED_DIRS, join_parts, split_path

__all__ = ["MAX_LIST_ENTRIES", "Workspace"]

MAX_LIST_ENTRIES = 20_000
"""Most entries one listing returns; a larger tree must be listed a directory at a time."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO for reading would otherwise block until a writer appears.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_PROC_FD = "/proc/self/fd"


@cache
def _proc_fd_exists() -> bool:
    """Whether descriptors can be resolved to paths (a Linux /proc is mounted)."""
    return os.path.isdir(_PROC_FD)


# Compare-and-swap needs check and replace to be one step. Threads of this process take
# a lock stripe (a fixed set keeps that bounded however many paths are written); every
# process, this one included, also takes an exclusive flock on the parent directory, so
# writers in other processes (other workers, a second server on the same disk) wait too.
_STRIPES = tuple(threading.Lock() for _ in range(64))


@contextmanager
def _exclusive(directory_fd: int) -> Iterator[None]:
    """Hold an exclusive ``flock`` on a directory while checking and replacing in it."""
    fcntl.flock(directory_fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(directory_fd, fcntl.LOCK_UN)


class Workspace:
    """One directory holding a project's files.

    Args:
        root: The workspace directory; created when missing.
        owner: ``(uid, gid)`` that every file and directory this workspace creates is
            given (the host user confined commands run as); None keeps the service's.
    """

    def __init__(self, root: Path, *, owner: tuple[int, int] | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = Path(os.path.realpath(root))
        self.owner = owner

    # --- resolution --------------------------------------------------------------
    def _open_root(self) -> int:
        return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def _open_dir(self, parts: tuple[str, ...], *, path: str, create: bool = False) -> int:
        """A descriptor of the directory ``parts``, walked without following symlinks.

        Raises:
            PathOutsideSandbox: A component is a symlink, or the directory is not
                inside the workspace any more.
            NotFound: A component is missing (and ``create`` is False) or is a file.
            InvalidInput: ``create`` is True and a component is a file.
        """
        fd = self._open_root()
        try:
            for index, part in enumerate(parts):
                fd = _replace_fd(
                    fd, _open_component(fd, part, path, create, parts[: index + 1], self.owner)
                )
            self._check_inside(fd, path)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _check_inside(self, fd: int, path: str) -> None:
        if not _proc_fd_exists():  # pragma: no cover - Linux always has /proc
            return
        real = os.readlink(f"{_PROC_FD}/{fd}")
        root = str(self.root)
        if real != root and not real.startswith(root + "/"):
            raise PathOutsideSandbox(path, "resolves outside the workspace")

    @contextmanager
    def _parent(self, path: str, *, create: bool = False) -> Iterator[tuple[int, str, str]]:
        """Yield ``(parent_fd, name, normalized_path)`` for a non-root path."""
        parts = split_path(path)
        fd = self._open_dir(parts[:-1], path=path, create=create)
        try:
            yield fd, parts[-1], join_parts(parts)
        finally:
            os.close(fd)

    def _lock(self, *paths: str) -> ExitStack:
        stack = ExitStack()
        indexes = sorted({hash((str(self.root), p)) % len(_STRIPES) for p in paths})
        for index in indexes:
            stack.enter_context(_STRIPES[index])
        return stack

    # --- files -------------------------------------------------------------------
    def read(self, path: str) -> bytes:
        """The bytes of a regular file."""
        with self._parent(path) as (parent, name, rel):
            data = _read_at(parent, name, rel)
        if data is None:
            raise NotFound("file", rel)
        return data

    def write(self, path: str, data: bytes, *, expected_sha256: str | None = None) -> None:
        """Replace a file atomically (temp file + rename), optionally compare-and-swap."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidInput(f"file content must be bytes, not {type(data).__name__}")
        with ExitStack() as stack:
            try:
                # A write that expects an existing file must not create directories.
                parent, name, rel = stack.enter_context(
                    self._parent(path, create=not expected_sha256)
                )
            except NotFound:
                raise ConcurrentModification(join_parts(split_path(path))) from None
            stack.enter_context(self._lock(rel))
            stack.enter_context(_exclusive(parent))
            try:
                current = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                current = None
            if current is not None:
                _require_regular(current, rel)
            if expected_sha256 is not None:
                old = _read_at(parent, name, rel) if current is not None else None
                if not _content_matches(old, expected_sha256):
                    raise ConcurrentModification(rel)
            mode = stat_mod.S_IMODE(current.st_mode) if current is not None else 0o644
            _replace_at(parent, name, bytes(data), mode, self.owner)

    def delete(self, path: str) -> None:
        """Delete a file, a symlink (not its target) or a directory tree."""
        with self._parent(path) as (parent, name, rel), self._lock(rel), _exclusive(parent):
            try:
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                raise NotFound("file", rel) from None
            if stat_mod.S_ISDIR(st.st_mode):
                # rmtree with dir_fd walks by descriptor and refuses a symlink swapped
                # in for the directory, so it never deletes outside the workspace.
                shutil.rmtree(name, dir_fd=parent)
            else:
                os.unlink(name, dir_fd=parent)

    def rename(self, path: str, new_path: str) -> None:
        """Move a file or directory; the target must not exist."""
        with ExitStack() as stack:
            src_fd, src_name, src_rel = stack.enter_context(self._parent(path))
            try:
                os.stat(src_name, dir_fd=src_fd, follow_symlinks=False)
            except FileNotFoundError:
                raise NotFound("file", src_rel) from None
            dst_fd, dst_name, dst_rel = stack.enter_context(self._parent(new_path, create=True))
            stack.enter_context(self._lock(src_rel, dst_rel))
            try:
                os.stat(dst_name, dir_fd=dst_fd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            else:
                raise InvalidInput(f"cannot move {src_rel} to {dst_rel}: the target exists")
            try:
                os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
            except FileNotFoundError:
                raise NotFound("file", src_rel) from None
            except OSError as exc:
                if exc.errno == errno.EINVAL:
                    raise InvalidInput(f"cannot move {src_rel} into itself") from None
                raise

    def stat(self, path: str) -> FileInfo | None:
        """Facts about one path (a symlink is described, not followed), or None."""
        parts = split_path(path, allow_root=True)
        rel = join_parts(parts)
        try:
            fd = self._open_dir(parts[:-1], path=path)
        except NotFound:
            return None
        try:
            if not parts:
                return _info(rel, os.fstat(fd))
            try:
                st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            except (FileNotFoundError, NotADirectoryError):
                return None
            return _info(rel, st)
        finally:
            os.close(fd)

    def list(
        self, path: str = ".", *, recursive: bool = False, include_ignored: bool = False
    ) -> list[FileInfo]:
        """Entries under a directory, sorted by path, without node_modules and .git, and
        without what the root ``.gitignore`` matches unless ``include_ignored``
        (:mod:`builder.sandbox.ignore`)."""
        parts = split_path(path, allow_root=True)
        rules = None if include_ignored else self._ignore_rules()
        fd = self._open_dir(parts, path=path)
        entries: list[FileInfo] = []
        try:
            for rel, st in _walk(fd, parts, recursive=recursive, rules=rules):
                if len(entries) >= MAX_LIST_ENTRIES:
                    raise LimitExceeded(
                        f"more than {MAX_LIST_ENTRIES} entries under {join_parts(parts)}; "
                        "list a subdirectory or without recursion",
                        limit=MAX_LIST_ENTRIES,
                        size=len(entries) + 1,
                    )
                entries.append(_info(rel, st))
        finally:
            os.close(fd)
        entries.sort(key=lambda info: info.path)
        return entries

    def _ignore_rules(self) -> IgnoreRules | None:
        try:
            data = self.read(GITIGNORE)
        except (NotFound, InvalidInput, PathOutsideSandbox):
            return None  # missing, or a link or a FIFO: no rules
        return ignore_rules(data)

    def disk_usage(self) -> int:
        """Bytes in regular files, leaving out node_modules and .git."""
        fd = self._open_root()
        try:
            return sum(
                st.st_size
                for _, st in _walk(fd, (), recursive=True)
                if stat_mod.S_ISREG(st.st_mode)
            )
        finally:
            os.close(fd)

    def open_directory(self, path: str) -> int:
        """A descriptor of a directory inside the workspace (the caller closes it)."""
        parts = split_path(path, allow_root=True)
        return self._open_dir(parts, path=path)


def _replace_fd(old: int, new: int) -> int:
    os.close(old)
    return new


def _open_component(
    fd: int,
    part: str,
    path: str,
    create: bool,
    prefix: tuple[str, ...],
    owner: tuple[int, int] | None = None,
) -> int:
    for attempt in range(2):
        try:
            return os.open(part, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create or attempt:
                raise NotFound("file", join_parts(prefix)) from None
            with suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
                if owner is not None:
                    os.chown(part, *owner, dir_fd=fd, follow_symlinks=False)
        except (NotADirectoryError, OSError) as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            if stat_mod.S_ISLNK(st.st_mode):
                raise PathOutsideSandbox(
                    path, f"{join_parts(prefix)} is a symbolic link; symlinks are not followed"
                ) from None
            if create:
                raise InvalidInput(f"{join_parts(prefix)} is a file, not a directory") from None
            raise NotFound("file", path) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _content_matches(content: bytes | None, expected_sha256: str) -> bool:
    """Whether ``content`` (None = no file) is what the writer last saw."""
    if content is None or expected_sha256 == "":
        return content is None and expected_sha256 == ""
    return hashlib.sha256(content).hexdigest() == expected_sha256


def _require_regular(st: os.stat_result, rel: str) -> None:
    if stat_mod.S_ISLNK(st.st_mode):
        raise PathOutsideSandbox(rel, "is a symbolic link; symlinks are not followed")
    if stat_mod.S_ISDIR(st.st_mode):
        raise InvalidInput(f"{rel} is a directory")
    if not stat_mod.S_ISREG(st.st_mode):
        raise InvalidInput(f"{rel} is not a regular file")


def _read_at(parent: int, name: str, rel: str) -> bytes | None:
    """The content of ``name`` in ``parent``; None when missing."""
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PathOutsideSandbox(rel, "is a symbolic link; symlinks are not followed") from None
        raise
    try:
        _require_regular(os.fstat(fd), rel)
        os.set_blocking(fd, True)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _replace_at(
    parent: int, name: str, data: bytes, mode: int, owner: tuple[int, int] | None = None
) -> None:
    temp = f".builder-{secrets.token_hex(8)}.tmp"
    fd = os.open(temp, _TEMP_FLAGS, 0o600, dir_fd=parent)
    try:
        try:
            if owner is not None:
                os.fchown(fd, *owner)
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        # rename(2) replaces the final component itself: a symlink there would be
        # replaced, never written through.
        os.replace(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=parent)
        raise


def _walk(
    fd: int, parts: tuple[str, ...], *, recursive: bool, rules: IgnoreRules | None = None
) -> Iterator[tuple[str, os.stat_result]]:
    """Yield ``(relative_path, lstat)`` under the directory ``fd`` without following links
    (leaving out what ``rules`` ignore, and the whole of an ignored directory)."""
    items: list[tuple[str, os.stat_result]] = []
    with os.scandir(fd) as scan:
        for entry in scan:
            try:
                items.append((entry.name, entry.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue  # gone since the scan (another writer's temporary file)
    for name, st in items:
        if name in SKIPPED_DIRS:
            continue
        rel = join_parts((*parts, name))
        if rules is not None and rules.ignored(rel, is_dir=stat_mod.S_ISDIR(st.st_mode)):
            continue
        yield rel, st
        if recursive and stat_mod.S_ISDIR(st.st_mode):
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                continue  # removed or replaced by a symlink since the scan: skip it
            try:
                yield from _walk(child, (*parts, name), recursive=True, rules=rules)
            finally:
                os.close(child)


def _info(rel: str, st: os.stat_result) -> FileInfo:
    mode = st.st_mode
    is_dir = stat_mod.S_ISDIR(mode)
    special = None
    if not is_dir and not stat_mod.S_ISREG(mode):
        special = (
            "symlink"
            if stat_mod.S_ISLNK(mode)
            else "fifo"
            if stat_mod.S_ISFIFO(mode)
            else "socket"
            if stat_mod.S_ISSOCK(mode)
            else "device"
        )
    size = st.st_size if special is None and not is_dir else 0
    return FileInfo(path=rel, size=size, is_dir=is_dir, modified=st.st_mtime, special=special)
