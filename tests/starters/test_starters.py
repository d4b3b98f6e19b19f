"""Starters: a project begins with a starter's files as its first version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from builder.errors import InvalidInput
from builder.hookspecs import hookimpl
from builder.persistence.database import Database
from builder.persistence.snapshots import list_snapshots, read_file, tree
from builder.persistence.users import get_or_create_user
from builder.plugins import BUILTIN_PLUGIN, build_starter_registry, new_plugin_manager
from builder.starters import create_project, starter_files
from builder.tools import builtin

VITE_FILES = {
    ".gitignore",
    "index.html",
    "package-lock.json",
    "package.json",
    "src/App.tsx",
    "src/index.css",
    "src/main.tsx",
    "tsconfig.json",
    "vite.config.ts",
}


def _registry(*plugins: Any) -> Any:
    manager = new_plugin_manager()
    manager.register(builtin, name=BUILTIN_PLUGIN)
    for n, plugin in enumerate(plugins):
        manager.register(plugin, name=f"plugin-{n}")
    return build_starter_registry(manager)


def test_the_builtin_starters_pin_their_versions_and_ship_a_lock_file() -> None:
    registry = _registry()
    assert registry.names() == ["astro", "static", "vite-react-ts"]
    for name in ("vite-react-ts", "astro"):
        files = starter_files(registry.get(name))
        manifest = json.loads(files["package.json"])
        versions = {**manifest["dependencies"], **manifest["devDependencies"]}
        assert all(v[0].isdigit() for v in versions.values()), f"{name} pins {versions}"
        lock = json.loads(files["package-lock.json"])
        assert lock["packages"][""]["dependencies"] == manifest["dependencies"]
    assert set(starter_files(registry.get("vite-react-ts"))) == VITE_FILES


def test_plugins_add_starters_with_provenance(tmp_path: Path) -> None:
    (tmp_path / "blog").mkdir()
    (tmp_path / "blog" / "index.md").write_text("# Blog\n")

    class Blog:
        @hookimpl
        def register_starters(self, register: Any) -> None:
            register("blog", tmp_path / "blog", description="A Markdown blog")

    registry = _registry(Blog())
    assert (registry.get("blog").plugin, starter_files(registry.get("blog"))) == (
        "plugin-0",
        {"index.md": b"# Blog\n"},
    )

    class Clash:
        @hookimpl
        def register_starters(self, register: Any) -> None:
            register("static", tmp_path / "blog", description="mine")

    with pytest.raises(InvalidInput, match="already registered by builtin"):
        _registry(Clash())
    with pytest.raises(InvalidInput, match="the starters are: astro, static, vite-react-ts"):
        _registry().get("nope")


async def test_a_starter_becomes_version_one(db: Database) -> None:
    user = await get_or_create_user(db, name="ada")
    project = await create_project(db, user_id=user.id, name="shop", starter="vite-react-ts")
    versions = (await list_snapshots(db, project_id=project.id)).items
    assert [(v.version, v.summary) for v in versions] == [
        (1, "Started from the vite-react-ts starter")
    ]
    assert set(await tree(db, project_id=project.id)) == VITE_FILES
    package = json.loads(await read_file(db, project_id=project.id, path="package.json"))
    assert package["devDependencies"]["vite"] == "7.3.8"
    empty = await create_project(db, user_id=user.id, name="blank")
    assert (await list_snapshots(db, project_id=empty.id)).items == []
