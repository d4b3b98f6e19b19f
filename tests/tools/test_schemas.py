"""The exact definition of every built-in tool that a model receives.

A change here changes what every model sees: names, required fields, types and the
description of each argument. Regenerate the file on purpose, after reading the diff::

    python -c "import json; from builder.graphs import tool_specs; \
from builder.plugins import build_tool_registry, new_plugin_manager; \
from builder.tools import builtin; m = new_plugin_manager(); m.register(builtin); \
print(json.dumps(tool_specs(build_tool_registry(m)), indent=2, sort_keys=True))" \
> tests/tools/tool_schemas.json
"""

from __future__ import annotations

import json
from pathlib import Path

from builder.graphs import tool_specs
from builder.plugins import build_tool_registry, new_plugin_manager
from builder.tools import builtin

EXPECTED = Path(__file__).with_name("tool_schemas.json")


def _builtin_specs() -> list[dict[str, object]]:
    manager = new_plugin_manager()
    manager.register(builtin)
    return tool_specs(build_tool_registry(manager))


def test_every_builtin_tool_sends_its_recorded_schema() -> None:
    specs = _builtin_specs()
    assert json.loads(json.dumps(specs)) == json.loads(EXPECTED.read_text())


def test_every_argument_is_described_for_the_model() -> None:
    for spec in _builtin_specs():
        function = spec["function"]
        assert isinstance(function, dict) and function["description"]
        for name, schema in function["parameters"].get("properties", {}).items():
            assert schema.get("description"), f"{function['name']}.{name} has no description"
