"""The public API is exactly what ``builder.__all__`` says, sorted."""

from __future__ import annotations

import ast
import subprocess
import sys

import builder


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in dir(builder) if not name.startswith("_")} - {
        "annotations",
        "importlib",
        "TYPE_CHECKING",
        "Any",
    }
    # Submodules are importable but are not part of the flat public API.
    modules = {name for name in public if type(getattr(builder, name)).__name__ == "module"}
    assert builder.__all__ == sorted(builder.__all__)
    assert set(builder.__all__) - {"__version__"} == public - modules


def test_every_exported_name_resolves() -> None:
    for name in builder.__all__:
        assert getattr(builder, name) is not None, name


def _loaded(module: str, candidates: tuple[str, ...]) -> list[str]:
    """Which of ``candidates`` a fresh interpreter has imported after ``import module``."""
    probe = f"import sys, {module}; print(sorted(m for m in {candidates!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    return list(ast.literal_eval(out))


def test_importing_builder_loads_none_of_the_heavy_dependencies() -> None:
    """``import builder`` stays light: the public API is imported on first use."""
    heavy = ("langgraph", "langchain_core", "fastapi", "sqlalchemy", "psycopg", "redis", "e2b")
    assert _loaded("builder", (*heavy, "pydantic_settings")) == []
    # The command line imports each command's work when it runs: `builder --help` loads
    # neither the settings nor logging (structlog pulls in rich and pygments).
    light = ("builder.settings", "builder.log", "structlog", "pydantic", "asyncio")
    assert _loaded("builder.cli", (*light, "langgraph", "sqlalchemy")) == []
    # And each name still resolves to the object of its own module.
    assert builder.RunService.__module__ == "builder.runs.service"
