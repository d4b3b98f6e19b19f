"""The per-host package cache confined commands share: npm's content-addressed store.

npm keeps downloaded tarballs in ``~/.npm/_cacache``: ``content-v2`` holds each one
under the SHA-512 of its bytes, ``index-v5`` maps request URLs (registry metadata and
tarball URLs) to those digests. Only the content store is shared between projects
(``<BUILDER_PACKAGE_CACHE_DIR>/npm/_cacache``, bound read-write at the same place in
every confined command's private home); ``index-v5`` is a private, empty tmpfs in each
command. So:

* an install from a lock file (``npm ci``) finds every tarball by the digest its own
  lock file names, and npm checks the bytes against that digest as it reads them: a
  project that plants or alters a file in the shared store can make another project's
  install fetch that tarball again (npm says the cached data "seems to be corrupted"
  and refreshes it), never install something else;
* registry metadata (which version ``npm install react`` picks, and the digest of its
  tarball) is never shared, since it is not checked against anything the installing
  project chose: a shared index would let one project tell another what to install.

Installed ``node_modules`` trees are kept beside, in ``<BUILDER_PACKAGE_CACHE_DIR>/trees``,
which no confined command sees (:mod:`builder.sandbox.local.trees`).

pip and uv caches are not shared: neither checks cached content against a digest the
installing project chose (pip only with ``--require-hashes``), so a shared one would
let one project plant code in another's install. Python installs keep the private,
per-command home.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from builder.sandbox.local.owner import HostUser, adopt, reachable

__all__ = ["NPM_CACHE", "PackageCache", "package_cache"]

log = logging.getLogger(__name__)

NPM_CACHE = PurePosixPath("/home/sandbox/.npm")
"""npm's cache inside a confined command (``$HOME/.npm``, npm's default)."""
_STORE = "_cacache"
_PRIVATE = ("index-v5",)


@dataclass(frozen=True, slots=True)
class PackageCache:
    """Host directories of the shared package cache.

    Args:
        npm_store: npm's ``_cacache`` directory shared by every confined command.
    """

    npm_store: Path

    def bwrap_options(self, size: list[str]) -> list[str]:
        """bwrap options binding the store into the private home (``size``: tmpfs size)."""
        inner = NPM_CACHE / _STORE
        opts = ["--bind", str(self.npm_store), str(inner)]
        for name in _PRIVATE:
            opts += [*size, "--tmpfs", str(inner / name)]
        return opts


def package_cache(directory: Path, user: HostUser | None) -> PackageCache | None:
    """The cache under ``directory``, created (and given to ``user``) when missing.

    None, with the reason logged, when ``user`` cannot reach it: commands then install
    without a shared cache.
    """
    store = directory / "npm" / _STORE
    for path in (directory, directory / "npm", store, *(store / name for name in _PRIVATE)):
        if not path.is_dir():
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            if user is not None:
                os.chown(path, user.uid, user.gid)
    if user is not None:
        # Filled while commands ran as the service's user. Only npm's part: the cache of
        # installed trees beside it stays the service's (builder.sandbox.local.trees).
        adopt(directory / "npm", user)
        if os.lstat(directory).st_uid != user.uid:
            os.chown(directory, user.uid, user.gid, follow_symlinks=False)
        blocked = reachable(store, user)
        if blocked is not None:
            log.warning(
                "package cache %s unused: uid %d cannot pass through %s", store, user.uid, blocked
            )
            return None
    return PackageCache(store)
