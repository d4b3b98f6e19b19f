"""``builder tools list`` and ``builder tools list --json``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from builder.cli import app
from builder.plugins import reset_plugins
from builder.settings import get_settings
from tests.tools.test_registry import BUILTIN_TOOLS

runner = CliRunner()


@pytest.fixture(autouse=True)
def builtin_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("BUILDER_LOAD_PLUGINS", "")
    get_settings.cache_clear()
    reset_plugins()
    yield
    reset_plugins()


def test_table_lists_every_tool_with_its_plugin() -> None:
    result = runner.invoke(app, ["tools", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("│")]
    assert [row.split("│")[1].strip() for row in rows] == BUILTIN_TOOLS
    assert {row.split("│")[2].strip() for row in rows} == {"builtin"}
    assert "│ edit_file             │ builtin │ Replace one exact, unique occurrence of a text" in (
        result.output
    )
    assert "19 tools" in result.output


def test_json_lists_name_plugin_description_and_schema() -> None:
    result = runner.invoke(app, ["tools", "list", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [item["name"] for item in data] == BUILTIN_TOOLS
    edit = next(item for item in data if item["name"] == "edit_file")
    assert set(edit) == {"name", "plugin", "description", "parameters"}
    assert (edit["plugin"], edit["description"]) == (
        "builtin",
        "Replace one exact, unique occurrence of a text in a file with new text.",
    )
    assert edit["parameters"]["required"] == ["path", "search", "replace"]
    assert "ctx" not in edit["parameters"]["properties"]
