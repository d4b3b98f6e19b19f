"""What leaves builder: a version's stored files, or the build output made from them.

Both are a :class:`FileSource`: the paths first, then each file's bytes on demand, so
archives, git pushes and hosts hold one file in memory at a time and a host can hash
every file before it uploads only those it lacks.
"""

from __future__ import annotations

import json
import shlex
import uuid
from collections.abc import AsyncIterator
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from builder.errors import Conflict, InvalidInput, NotFound, OperationTimeout
from builder.persistence.database import Database
from builder.persistence.repositories import snapshots as repo
from builder.persistence.schemas import FileEntry
from builder.persistence.snapshots import tree
from builder.sandbox.base import Sandbox
from builder.settings import Settings

__all__ = [
    "BUILD_DIR",
    "FileSource",
    "SandboxFiles",
    "VersionFiles",
    "build_output",
    "builds",
    "iter_files",
    "latest_build",
]

BUILD_DIR = "dist"
"""Where a starter that builds writes its site (Vite's and Astro's default)."""


class FileSource(Protocol):
    """Files to ship: their paths, then each one's bytes."""

    async def paths(self) -> list[str]:
        """Every file's path, ``/``-separated, sorted."""
        ...

    async def read(self, path: str) -> bytes:
        """One file's bytes."""
        ...


async def iter_files(source: FileSource) -> AsyncIterator[tuple[str, bytes]]:
    """Every file of ``source`` with its bytes, one at a time."""
    for path in await source.paths():
        yield path, await source.read(path)


class VersionFiles:
    """A stored version's files, read blob by blob from the database.

    Args:
        db: The database.
        project_id: The project.
        version: A version number; None for the latest.
    """

    def __init__(self, db: Database, *, project_id: uuid.UUID, version: int | None) -> None:
        self.db = db
        self.project_id = project_id
        self.version = version
        self._tree: dict[str, FileEntry] | None = None

    async def entries(self) -> dict[str, FileEntry]:
        """path → (sha256, size) of the version.

        Raises:
            NotFound: No such version.
        """
        if self._tree is None:
            self._tree = await tree(self.db, project_id=self.project_id, version=self.version)
        return self._tree

    async def paths(self) -> list[str]:
        """Every path of the version, sorted."""
        return list(await self.entries())

    async def read(self, path: str) -> bytes:
        """One file's bytes (one blob fetched)."""
        sha = (await self.entries())[path].sha256

        async def work(session: AsyncSession) -> bytes:
            return (await repo.blob_data(session, shas=[sha]))[sha]

        return await self.db.run(work)


class SandboxFiles:
    """Files under a directory of a sandbox, with paths relative to that directory."""

    def __init__(self, sandbox: Sandbox, root: str = BUILD_DIR) -> None:
        self.sandbox = sandbox
        self.root = root.strip("/")

    async def paths(self) -> list[str]:
        """Every regular file under the root, sorted (symlinks and the like left out)."""
        # Build output is what a .gitignore lists: it is wanted here.
        entries = await self.sandbox.list_files(self.root, recursive=True, include_ignored=True)
        prefix = f"{self.root}/"
        return sorted(
            entry.path.removeprefix(prefix)
            for entry in entries
            if entry.is_file and entry.path.startswith(prefix)
        )

    async def read(self, path: str) -> bytes:
        """One file's bytes."""
        return await self.sandbox.read_file(f"{self.root}/{path}")


async def builds(source: FileSource) -> bool:
    """Whether a project's files build: a package.json with a ``build`` script."""
    if "package.json" not in await source.paths():
        return False
    try:
        manifest = json.loads(await source.read("package.json"))
    except ValueError:
        return False
    scripts = manifest.get("scripts") if isinstance(manifest, dict) else None
    return isinstance(scripts, dict) and "build" in scripts


async def build_output(sandbox: Sandbox, *, settings: Settings) -> SandboxFiles:
    """Build the project in its sandbox and return what it wrote to ``dist/``.

    Installs the dependencies first when ``node_modules`` is missing (``npm ci`` from
    the lock file, else ``npm install``), then runs ``npm run build``.

    Raises:
        InvalidInput: The project does not build (no package.json or no ``build``
            script), the install or the build fails (the message ends with the output's
            last lines), or the build writes nothing to ``dist/``.
        OperationTimeout: The install or the build outlasts ``timeout_install``.
    """
    try:
        raw = await sandbox.read_file("package.json")
    except NotFound:
        raise InvalidInput(
            "this project does not build (no package.json): export its files without built"
        ) from None
    try:
        scripts = json.loads(raw).get("scripts") or {}
    except (ValueError, AttributeError):
        raise InvalidInput("package.json is not valid JSON; fix it before building") from None
    if not isinstance(scripts, dict) or "build" not in scripts:
        raise InvalidInput(
            "this project does not build (package.json has no build script): "
            "export its files without built"
        )
    steps = []
    if await sandbox.stat("node_modules") is None:
        locked = await sandbox.stat("package-lock.json") is not None
        steps.append(["npm", "ci" if locked else "install", "--no-audit", "--no-fund"])
    steps.append(["npm", "run", "--silent", "build"])
    seconds = settings.timeout_install
    for step in steps:
        result = await sandbox.exec(shlex.join(step), timeout=seconds)
        if result.timed_out:
            raise OperationTimeout("build", seconds)
        if not result.ok:
            tail = "\n".join(f"{result.stdout}\n{result.stderr}".strip().splitlines()[-10:])
            raise InvalidInput(
                f"`{shlex.join(step)}` failed (exit code {result.exit_code}):\n{tail}"
            )
    output = SandboxFiles(sandbox, BUILD_DIR)
    if not await output.paths():
        raise InvalidInput(f"the build wrote no files to {BUILD_DIR}/")
    return output


async def latest_build(
    db: Database,
    sandbox: Sandbox,
    *,
    project_id: uuid.UUID,
    version: int | None,
    settings: Settings,
) -> tuple[int, SandboxFiles]:
    """Bring the project's sandbox to its latest version, build it, return the output.

    Returns:
        The version built and its output.

    Raises:
        Conflict: ``version`` is not the latest (the sandbox holds the latest only).
        Whatever :func:`build_output` raises.
    """
    from builder.persistence.files import sync_workspace

    latest = await sync_workspace(db, project_id=project_id, sandbox=sandbox)
    if latest == 0:
        raise NotFound("snapshot", f"{project_id} (the project has no version yet)")
    if version is not None and version != latest:
        raise Conflict(
            f"the build output is made from the latest version ({latest}) only; "
            f"export version {version}'s files without built"
        )
    return latest, await build_output(sandbox, settings=settings)
