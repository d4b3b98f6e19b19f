"""What the sdist and the wheel carry, built the way a release builds them.

The sdist is the whole source (the package, its tests, docs, examples and the
site-checker plugin with its own tests); the wheel is the ``builder`` package alone,
with the licence in its metadata. A wheel built from the unpacked sdist (what ``pip
install`` of an sdist does) has the same files as one built from the checkout.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from hatchling.build import build_sdist, build_wheel

ROOT = Path(__file__).resolve().parent.parent
SDIST_ROOTS = {
    "builder",
    "tests",
    "bench",
    "docs",
    "examples",
    "plugins",
    "README.md",
    "LICENSE",
    "langgraph.json",
}
BUILD_FILES = {"pyproject.toml", "PKG-INFO", ".gitignore"}
"""What hatchling adds to every sdist."""


def _build(source: Path, out: Path) -> tuple[Path, Path]:
    cwd = Path.cwd()
    os.chdir(source)  # hatchling builds the project in the current directory
    try:
        return out / build_sdist(str(out)), out / build_wheel(str(out))
    finally:
        os.chdir(cwd)


def _sdist_names(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as archive:
        members = [m.name for m in archive.getmembers() if m.isfile()]
    prefix = members[0].split("/", 1)[0] + "/"
    return {name.removeprefix(prefix) for name in members}


def _wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def _tracked(*roots: str) -> set[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--", *roots], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return {name for name in listed if (ROOT / name).is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _build(ROOT, tmp_path_factory.mktemp("dist"))


def test_the_sdist_is_the_whole_source_and_nothing_else(built: tuple[Path, Path]) -> None:
    names = _sdist_names(built[0])
    assert {name.split("/", 1)[0] for name in names} == SDIST_ROOTS | BUILD_FILES
    for expected in (
        "LICENSE",
        "builder/__init__.py",
        "builder/py.typed",
        "tests/conftest.py",
        "plugins/site-checker/pyproject.toml",
        "plugins/site-checker/builder_site_checker/plugin.py",
        "plugins/site-checker/tests/test_site_checker.py",
    ):
        assert expected in names, expected
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    if (ROOT / ".git").exists():
        # Every committed file of the shipped directories is in it (none left behind).
        missing = _tracked(*sorted(SDIST_ROOTS)) - names
        assert not missing


def test_the_wheel_is_the_package_with_its_licence(built: tuple[Path, Path]) -> None:
    names = _wheel_names(built[1])
    dist_info = next(name.split("/")[0] for name in names if ".dist-info/" in name)
    assert {name.split("/")[0] for name in names} == {"builder", dist_info}
    assert "builder/py.typed" in names
    # The studio ships inside the package: page, modules, vendored libraries and licences.
    for studio_file in (
        "index.html",
        "app.js",
        "project.js",
        "studio.css",
        "vendor/preact.module.js",
        "vendor/htm.module.js",
        "vendor/LICENSE.preact",
        "vendor/LICENSE.htm",
    ):
        assert f"builder/http/studio/static/{studio_file}" in names, studio_file
    assert f"{dist_info}/licenses/LICENSE" in names
    with zipfile.ZipFile(built[1]) as archive:
        meta = Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License") and "builder developers" in licence


def test_a_wheel_built_from_the_sdist_has_the_same_files(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    with tarfile.open(built[0]) as archive:
        archive.extractall(tmp_path / "src", filter="data")
    (unpacked,) = (tmp_path / "src").iterdir()
    _, wheel = _build(unpacked, tmp_path / "dist")
    assert _wheel_names(wheel) == _wheel_names(built[1])
