"""Chat script files: parsing, validation errors with locations, bundled names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.errors import ConfigurationError
from builder.models.script import (
    ChatScript,
    ScriptedResponse,
    ScriptedToolCall,
    ScriptedTurn,
    load_script,
    resolve_script,
)

BAD = {
    "turns": [
        {
            "responses": [
                {"content": "ok"},
                {"tool_calls": [{"args": {}}]},
                {},
                {"content": "x", "error": {"status_code": 200}},
            ]
        }
    ],
    "tasks": {"title": "x"},
    "after_last_turn": "loop",
}

BAD_MESSAGE = """\
invalid chat script {path}: 5 problem(s):
  - turns[0].responses[1].tool_calls[0].name: Field required
  - turns[0].responses[2]: a response needs `content`, `tool_calls` or both
  - turns[0].responses[3].error.status_code: Input should be greater than or equal to 400
  - after_last_turn: Input should be 'cycle', 'repeat_last' or 'finish'
  - tasks.title: Extra inputs are not permitted"""


def test_a_script_file_loads_from_yaml_and_json(tmp_path: Path) -> None:
    data = {
        "turns": [
            {
                "responses": [
                    {"content": "plan", "tool_calls": [{"name": "plan_changes", "args": {}}]},
                    {"content": "done"},
                ]
            }
        ]
    }
    expected = ChatScript(
        turns=[
            ScriptedTurn(
                responses=[
                    ScriptedResponse(
                        content="plan", tool_calls=[ScriptedToolCall(name="plan_changes")]
                    ),
                    ScriptedResponse(content="done"),
                ]
            )
        ]
    )
    (tmp_path / "s.json").write_text(json.dumps(data))
    (tmp_path / "s.yaml").write_text(
        "turns:\n"
        "  - responses:\n"
        "      - content: plan\n"
        "        tool_calls: [{name: plan_changes}]\n"
        "      - content: done\n"
    )
    assert load_script(tmp_path / "s.json") == expected
    assert load_script(tmp_path / "s.yaml") == expected


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_every_problem_is_reported_with_file_and_location(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_text(json.dumps(BAD))  # JSON is valid YAML too
    with pytest.raises(ConfigurationError) as caught:
        load_script(path)
    assert str(caught.value) == BAD_MESSAGE.format(path=path)


def test_syntax_errors_and_wrong_shapes_name_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("turns: [\n")
    with pytest.raises(ConfigurationError, match=f"chat script {broken} is not valid JSON/YAML"):
        load_script(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- content: hi\n")
    with pytest.raises(ConfigurationError) as caught:
        load_script(listed)
    assert str(caught.value) == (
        f"invalid chat script {listed}: 1 problem(s):\n"
        "  - (top level): Input should be a valid dictionary or instance of ChatScript"
    )


def test_tool_call_names_must_be_tool_names() -> None:
    with pytest.raises(ValueError, match="String should match pattern"):
        ScriptedToolCall(name="write file")


def test_references_resolve_to_bundled_scripts_or_paths() -> None:
    assert resolve_script("demo").name == "demo.yaml"
    assert resolve_script("demo").is_file()
    assert resolve_script("./demo") == Path("demo")
    assert resolve_script("scripts/x.json") == Path("scripts/x.json")
    assert resolve_script("x.yml") == Path("x.yml")
    with pytest.raises(ConfigurationError, match="needs a script"):
        resolve_script("")
