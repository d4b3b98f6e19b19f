"""Starters: the files a new project begins with, written as its first version.

builder ships three: ``static`` (plain HTML, CSS and JavaScript, served as they are),
``vite-react-ts`` (Vite + React + TypeScript + Tailwind) and ``astro``. The framework
starters pin every version in ``package.json`` and ship a ``package-lock.json``, so a
project installs the same tree today and next year. Plugins add starters through the
``register_starters(register)`` hook::

    @hookimpl
    def register_starters(register):
        register("eleventy", Path(__file__).parent / "eleventy", description="Eleventy blog")

A starter is a directory; every file under it becomes a file of the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING

from builder.errors import InvalidInput
from builder.registry import NamedRegistry

if TYPE_CHECKING:
    import uuid

    from builder.persistence.database import Database
    from builder.persistence.schemas import ProjectPublic
    from builder.settings import Settings

__all__ = [
    "BUILTIN_STARTERS",
    "Starter",
    "StarterRegistry",
    "create_project",
    "starter_files",
    "starter_version",
]

_MAX_FILES = 500
_MAX_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Starter:
    """A project template.

    Attributes:
        name: What ``create_project(starter=...)`` and ``builder new --starter`` take.
        description: One line for listings.
        directory: Where its files are.
        plugin: The plugin that registered it (``builtin`` for builder's own).
    """

    name: str
    description: str
    directory: Traversable
    plugin: str


BUILTIN_STARTERS = {
    "static": "Plain HTML, CSS and JavaScript, served as they are (no install, no build).",
    "vite-react-ts": "Vite + React + TypeScript + Tailwind CSS, with a type-checked build.",
    "astro": "Astro: content-focused static pages with a checked build.",
}


class StarterRegistry(NamedRegistry[Starter]):
    """Starters by name, each knowing the plugin that registered it."""

    def __init__(self) -> None:
        super().__init__("starter")

    def register(
        self, name: str, directory: Traversable | Path, *, description: str, plugin: str
    ) -> Starter:
        """Add a starter.

        Raises:
            InvalidInput: The name is malformed, already taken, or the directory is
                missing.
        """
        self._claim(name, plugin)
        if not directory.is_dir():
            raise InvalidInput(f"starter {name!r} of {plugin}: {directory} is not a directory")
        return self._add(name, Starter(name, description, directory, plugin))


def builtin_directory(name: str) -> Traversable:
    """Where a built-in starter's files are, inside the installed package."""
    return files("builder.starters").joinpath("templates", name)


def starter_files(starter: Starter) -> dict[str, bytes]:
    """Every file of a starter: project path → content.

    Raises:
        InvalidInput: The starter holds more than 500 files or 5 MB.
    """
    found: dict[str, bytes] = {}
    total = 0
    pending: list[tuple[str, Traversable]] = [("", starter.directory)]
    while pending:
        prefix, directory = pending.pop()
        for entry in directory.iterdir():
            path = f"{prefix}{entry.name}"
            if entry.is_dir():
                if entry.name not in {"node_modules", "dist", ".git", "__pycache__"}:
                    pending.append((f"{path}/", entry))
                continue
            data = entry.read_bytes()
            total += len(data)
            found[path] = data
            if len(found) > _MAX_FILES or total > _MAX_BYTES:
                raise InvalidInput(
                    f"starter {starter.name!r} is larger than {_MAX_FILES} files or "
                    f"{_MAX_BYTES // (1024 * 1024)} MB"
                )
    return dict(sorted(found.items()))


def starter_version(name: str, settings: Settings | None = None) -> tuple[dict[str, bytes], str]:
    """A starter's files and the summary of the version they become.

    Raises:
        InvalidInput: No such starter (the message lists the known ones).
    """
    from builder.plugins import get_starter_registry

    starter = get_starter_registry(settings).get(name)
    return starter_files(starter), f"Started from the {name} starter"


async def create_project(
    db: Database,
    *,
    user_id: uuid.UUID,
    name: str,
    description: str = "",
    starter: str | None = None,
    settings: Settings | None = None,
) -> ProjectPublic:
    """Create a project, with a starter's files as its first version when one is named.

    The one way every entry point (REST, CLI, LangGraph threads) creates a project:
    with a starter, the project and its first version are written in one transaction.

    Raises:
        InvalidInput: No such starter, or a bad name.
        NotFound: No such user.
    """
    from builder.persistence import projects, snapshots

    if starter is None:
        return await projects.create_project(
            db, user_id=user_id, name=name, description=description
        )
    files, summary = starter_version(starter, settings)
    project, _ = await snapshots.create_project_with_files(
        db, user_id=user_id, name=name, description=description, files=files, summary=summary
    )
    return project
