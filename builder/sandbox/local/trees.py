"""The per-host cache of installed ``node_modules`` trees.

The tarball store (:mod:`builder.sandbox.local.packages`) saves the download; npm still
unpacks and writes every file. This cache keeps whole installed trees, so a second
project whose install inputs are the same gets its ``node_modules`` without running npm.

* **Key**: SHA-256 of the lock file, ``package.json`` and ``.npmrc`` bytes, the package
  manager and its version, the Node.js version, and the platform and architecture.
* **Only clean installs are stored.** A miss does not install in the project: the
  service copies the key's inputs (``package.json`` without its ``scripts``, the lock
  file, ``.npmrc``) into a fresh directory under ``<cache>/trees`` that no project can
  see, runs ``npm ci`` there in the same confinement (shared tarball store, the project's
  network mode), and keeps the result. Nothing a project's own files or commands do can
  reach that tree. The dependencies' lifecycle scripts run there (they come from the
  lock file, so they are part of the key); the root package's own ``preinstall``,
  ``install``, ``postinstall`` and ``prepare`` scripts do not: ``install_packages`` runs
  them in the project after the tree is in place, as ``npm ci`` would.
* **Sealed**: a stored tree's files belong to the service's user and are read-only
  (set-id bits dropped). An entry is written into ``.tmp-<random>`` and renamed into
  place, so a crash leaves no half entry (left-over temporary directories older than a
  day are removed by the next store).
* **Materialised** into a workspace by descriptor (``mkdirat``/``linkat``/``openat``
  with ``O_NOFOLLOW``), never through a path a project could swap for a symlink.
  Directories are created new and belong to the sandbox user (so ``npm install`` can
  add and remove packages later). Files are *hard links* when the service runs as root
  and commands run as another uid (``BUILDER_SANDBOX_UID``): the sandbox user can
  replace a linked file in its own tree but never write to it, so nothing a project does
  changes what the next project gets. Otherwise (the service's own uid runs the
  commands, or the cache is on another filesystem) files are copied. npm's hidden lock
  file ``node_modules/.package-lock.json``, which npm rewrites in place, is always
  copied.
* **Bounded**: ``BUILDER_PACKAGE_TREE_CACHE_BYTES`` (0 turns the cache off); each hit
  refreshes its entry's time, and after a store the least recently used entries go
  until the rest fit.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import os
import platform
import secrets
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from builder.sandbox.local.owner import HostUser

__all__ = ["INPUTS", "NODE_MODULES", "Stored", "TreeCache", "tool_versions", "tree_cache"]

INPUTS = ("package.json", "package-lock.json", ".npmrc")
"""The workspace files a tree's key covers (``.npmrc`` may be missing)."""
NODE_MODULES = "node_modules"
_HIDDEN_LOCK = ".package-lock.json"
_META = "entry.json"
_TMP = ".tmp-"
_STALE_SECONDS = 24 * 3600.0
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@functools.lru_cache(maxsize=16)
def _version(executable: str, mtime_ns: int, size: int) -> str:
    done = subprocess.run(
        [executable, "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def tool_versions(manager: str, path: str) -> str:
    """``"<manager> <version>; node <version>; <os> <arch>"``, found on ``path``.

    Versions are asked once per executable (again when the file changes).
    """
    parts = []
    for name in (manager, "node"):
        found = shutil.which(name, path=path)
        if found is None:
            parts.append(f"{name} missing")
            continue
        st = os.stat(found)
        parts.append(f"{name} {_version(found, st.st_mtime_ns, st.st_size)}")
    parts.append(f"{sys.platform} {platform.machine()}")
    return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Stored:
    """What an entry holds: bytes of its regular files and how many packages."""

    size: int
    packages: int


@dataclass(frozen=True, slots=True)
class TreeCache:
    """Installed trees under ``directory`` (``<package cache>/trees``).

    Args:
        directory: Where entries live; no confined command can see it.
        limit_bytes: Most bytes of entries kept (least recently used go first).
        user: The host user confined commands run as; None when they run as the
            service's own user.
        hard_links: Link files where that is safe (False: always copy).
    """

    directory: Path
    limit_bytes: int
    user: HostUser | None = None
    hard_links: bool = True

    @property
    def links(self) -> bool:
        """Whether files are hard links: the sandbox user cannot write the service's."""
        return self.hard_links and self.user is not None and self.user.uid != os.geteuid()

    @staticmethod
    def key(inputs: dict[str, bytes | None], tools: str) -> str:
        """The entry name for these input files and tool versions."""
        digest = hashlib.sha256(b"builder installed tree v1\0")
        digest.update(tools.encode() + b"\0")
        for name in INPUTS:
            data = inputs.get(name)
            digest.update(name.encode() + (b"\1" if data is None else b"\0"))
            if data is not None:
                digest.update(len(data).to_bytes(8, "big") + data)
        return digest.hexdigest()

    def lookup(self, key: str) -> tuple[Path, Stored] | None:
        """The entry's ``node_modules`` and facts, marked as just used; None on a miss."""
        entry = self.directory / key
        try:
            meta = json.loads((entry / _META).read_text())
            stored = Stored(int(meta["size"]), int(meta["packages"]))
            os.utime(entry)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return entry / NODE_MODULES, stored

    # --- storing -----------------------------------------------------------------
    def begin(self, inputs: dict[str, bytes | None]) -> Path:
        """A fresh directory with the install inputs, given to the sandbox user.

        ``package.json`` loses its ``scripts``: the root package's scripts belong to
        the project and run there.
        """
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._sweep()
        work = self.directory / f"{_TMP}{secrets.token_hex(8)}"
        work.mkdir(mode=0o700)
        for name in INPUTS:
            data = inputs.get(name)
            if data is None:
                continue
            if name == "package.json":
                manifest = json.loads(data)
                manifest.pop("scripts", None)
                data = json.dumps(manifest, indent=2).encode()
            (work / name).write_bytes(data)
        if self.user is not None:
            for path in (work, *work.iterdir()):
                os.lchown(path, self.user.uid, self.user.gid)
        return work

    def store(self, work: Path, key: str, *, packages: int | None = None) -> Stored | None:
        """Seal ``work/node_modules`` and rename it into the entry ``key``.

        ``packages`` is how many the install reported; counted in the tree when None.

        Returns what was stored, or None when the tree is missing, larger than the
        limit, or another process stored the same key first (``work`` is removed then).
        """
        try:
            tree = work / NODE_MODULES
            if not tree.is_dir() or tree.is_symlink():
                return None
            for name in os.listdir(work):
                if name != NODE_MODULES:
                    _remove(work / name)
            stored = _seal(tree)
            if packages is not None:
                stored = Stored(stored.size, packages)
            if stored.size > self.limit_bytes:
                return None
            meta = {"size": stored.size, "packages": stored.packages}
            (work / _META).write_text(json.dumps(meta))
            os.chown(work, os.geteuid(), os.getegid(), follow_symlinks=False)
            os.chmod(work, 0o700, follow_symlinks=False)
            try:
                os.rename(work, self.directory / key)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    return None
                raise
            self._evict(keep=key)
            return stored
        finally:
            if work.exists():
                _remove(work)

    def discard(self, work: Path) -> None:
        """Remove a temporary directory from :meth:`begin` that will not be stored."""
        _remove(work)

    def _entries(self) -> Iterator[tuple[float, int, Path]]:
        for path in self.directory.iterdir():
            if path.name.startswith("."):
                continue
            try:
                meta = json.loads((path / _META).read_text())
                yield path.stat().st_mtime, int(meta["size"]), path
            except (OSError, ValueError, KeyError, TypeError):
                continue

    def _evict(self, *, keep: str) -> None:
        entries = sorted(self._entries(), reverse=True)  # most recently used first
        total = 0
        for _, size, path in entries:
            total += size
            if total > self.limit_bytes and path.name != keep:
                _remove(path)
                total -= size

    def _sweep(self) -> None:
        """Remove temporary directories a crashed store left behind."""
        cutoff = time.time() - _STALE_SECONDS
        for path in self.directory.glob(f"{_TMP}*"):
            with contextlib.suppress(OSError):
                if path.lstat().st_mtime < cutoff:
                    _remove(path)

    # --- materialising -----------------------------------------------------------
    def materialize(self, tree: Path, root_fd: int) -> None:
        """Create ``node_modules`` in the workspace directory ``root_fd`` from ``tree``.

        Raises:
            FileExistsError: The workspace has a ``node_modules`` (remove it first).
            OSError: The entry went away meanwhile (evicted) or the disk is full; the
                caller removes the partial ``node_modules``.
        """
        owner = (self.user.uid, self.user.gid) if self.user is not None else None
        os.mkdir(NODE_MODULES, 0o755, dir_fd=root_fd)
        fd = os.open(NODE_MODULES, _DIR_FLAGS, dir_fd=root_fd)
        try:
            if owner is not None:
                os.fchown(fd, *owner)
            _Copier(self.links, owner).tree(tree, fd, top=True)
        finally:
            os.close(fd)


def tree_cache(directory: Path, limit_bytes: int, user: HostUser | None) -> TreeCache | None:
    """The cache of installed trees in ``directory``; None when ``limit_bytes`` is 0.

    The directory belongs to the service's user; the sandbox user may only pass
    through it (bubblewrap resolves a clean install's directory as that user).
    """
    if limit_bytes <= 0:
        return None
    directory.mkdir(mode=0o711, parents=True, exist_ok=True)
    st = directory.lstat()
    if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
        os.chown(directory, os.geteuid(), os.getegid(), follow_symlinks=False)
    os.chmod(directory, 0o711, follow_symlinks=False)  # noqa: S103 - pass-through only
    return TreeCache(directory, limit_bytes, user)


class _Copier:
    def __init__(self, links: bool, owner: tuple[int, int] | None) -> None:
        self.links = links
        self.owner = owner

    def tree(self, source: Path, fd: int, *, top: bool = False) -> None:
        with os.scandir(source) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    os.mkdir(entry.name, 0o755, dir_fd=fd)
                    child = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                    try:
                        if self.owner is not None:
                            os.fchown(child, *self.owner)
                        self.tree(Path(entry.path), child)
                    finally:
                        os.close(child)
                elif stat.S_ISLNK(st.st_mode):
                    os.symlink(os.readlink(entry.path), entry.name, dir_fd=fd)
                    if self.owner is not None:
                        os.chown(entry.name, *self.owner, dir_fd=fd, follow_symlinks=False)
                elif stat.S_ISREG(st.st_mode):
                    self.file(entry, st, fd, copy=top and entry.name == _HIDDEN_LOCK)

    def file(self, entry: os.DirEntry[str], st: os.stat_result, fd: int, *, copy: bool) -> None:
        if self.links and not copy:
            try:
                os.link(entry.path, entry.name, dst_dir_fd=fd, follow_symlinks=False)
                return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EMLINK, errno.EPERM):
                    raise
                self.links = False  # another filesystem: copy from now on
        mode = stat.S_IMODE(st.st_mode) | stat.S_IWUSR
        out = os.open(entry.name, _NEW_FILE, 0o600, dir_fd=fd)
        try:
            if self.owner is not None:
                os.fchown(out, *self.owner)
            os.fchmod(out, mode)
            with open(entry.path, "rb") as src, open(out, "wb", closefd=False) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        finally:
            os.close(out)


def _seal(tree: Path) -> Stored:
    """Give ``tree`` to the service's user, read-only; drop what is not a file, dir or link."""
    uid, gid = os.geteuid(), os.getegid()
    size = packages = 0
    for parent, dirs, files in os.walk(tree):
        for name in [*dirs, *files]:
            path = os.path.join(parent, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                if (st.st_uid, st.st_gid) != (uid, gid):
                    os.lchown(path, uid, gid)
                continue
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                os.unlink(path)  # a fifo, socket or device has no place in a package tree
                continue
            if (st.st_uid, st.st_gid) != (uid, gid):
                os.chown(path, uid, gid)
            if stat.S_ISDIR(st.st_mode):
                os.chmod(path, 0o700)  # only the service walks the cache
            else:
                os.chmod(path, stat.S_IMODE(st.st_mode) & 0o555)
                size += st.st_size
                if name == "package.json" and _is_package_dir(Path(parent)):
                    packages += 1
    os.chown(tree, uid, gid)
    os.chmod(tree, 0o700)
    return Stored(size, packages)


def _is_package_dir(directory: Path) -> bool:
    above = directory.parent
    if above.name.startswith("@"):
        above = above.parent
    return above.name == NODE_MODULES


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
