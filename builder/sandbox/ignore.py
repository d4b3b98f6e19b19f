"""Files a workspace's root ``.gitignore`` leaves out of its listings and snapshots.

Builds write output (``dist/``, ``.astro/``, ``.next/``, caches) into the workspace; the
starters' ``.gitignore`` lists it, as most projects' do. Listings
(:meth:`~builder.sandbox.base.Sandbox.list_files`) skip what the root ``.gitignore``
matches, with git's rules (``pathspec``), as they skip ``node_modules`` and ``.git``:
so snapshots, the graph's rescans, restores (which delete only listed files) and the
agent's listing tools leave build output alone. ``include_ignored=True`` lists it (the
export of a built site reads ``dist/``). Only the root ``.gitignore`` counts;
``.gitignore`` files in subdirectories and ``.git/info/exclude`` do not.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathspec import GitIgnoreSpec

    from builder.sandbox.base import Sandbox

__all__ = ["GITIGNORE", "IgnoreFile", "IgnoreRules", "ignore_rules", "ignored_writes"]

GITIGNORE = ".gitignore"
"""The file, at the workspace root, whose patterns listings leave out."""
MAX_GITIGNORE_BYTES = 64 * 1024
"""A larger ``.gitignore`` is read only this far."""


class IgnoreRules:
    """Compiled ``.gitignore`` patterns."""

    def __init__(self, spec: GitIgnoreSpec) -> None:
        self._spec = spec

    def ignored(self, path: str, *, is_dir: bool) -> bool:
        """Whether ``path`` (relative to the workspace root, ``/``-separated) is ignored."""
        return bool(self._spec.match_file(f"{path}/" if is_dir else path))


@functools.lru_cache(maxsize=64)
def ignore_rules(data: bytes | None) -> IgnoreRules | None:
    """The rules of a ``.gitignore``'s bytes; None when it has none (or is missing)."""
    if not data:
        return None
    from pathspec import GitIgnoreSpec

    lines = data[:MAX_GITIGNORE_BYTES].decode("utf-8", errors="replace").splitlines()
    spec = GitIgnoreSpec.from_lines(lines)
    return IgnoreRules(spec) if spec.patterns else None


class IgnoreFile:
    """A workspace's root ``.gitignore`` as a run last read it.

    For a run that has the workspace to itself (nothing else writes there while it
    works): it reads the file once, and again only after :meth:`forget`, which the run
    calls when one of its own changes touched the file or a command ran.
    """

    def __init__(self) -> None:
        self._rules: IgnoreRules | None = None
        self._read = False

    async def rules(self, sandbox: Sandbox) -> IgnoreRules | None:
        """The file's rules (read when not known); None when it has none."""
        if not self._read:
            self._rules = ignore_rules(await _gitignore(sandbox))
            self._read = True
        return self._rules

    def forget(self) -> None:
        """The file may have changed: read it again next time."""
        self._rules, self._read = None, False


async def _gitignore(sandbox: Sandbox) -> bytes | None:
    from builder.errors import InvalidInput, NotFound, PathOutsideSandbox

    try:
        return await sandbox.read_file(GITIGNORE)
    except (NotFound, InvalidInput, PathOutsideSandbox):
        return None


async def ignored_writes(
    sandbox: Sandbox, changes: dict[str, str | None], *, kept: IgnoreFile | None = None
) -> set[str]:
    """The written (not deleted) paths of ``changes`` the workspace's ``.gitignore``
    matches: files a file tool wrote there are not saved either.

    ``kept``: the file as the run last read it, for a run that has the workspace to
    itself (read from the workspace when None).
    """
    written = [path for path, sha in changes.items() if sha is not None]
    if not written:
        return set()
    if kept is None:
        kept = IgnoreFile()
    rules = await kept.rules(sandbox)
    if rules is None:
        return set()
    return {path for path in written if _ignored_or_under(rules, path)}


def _ignored_or_under(rules: IgnoreRules, path: str) -> bool:
    parts = path.split("/")
    for end in range(1, len(parts)):
        if rules.ignored("/".join(parts[:end]), is_dir=True):
            return True
    return rules.ignored(path, is_dir=False)
