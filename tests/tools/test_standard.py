"""LangChain's standard tool unit tests, for every built-in tool."""

from __future__ import annotations

from typing import Any

from langchain_core.tools import BaseTool
from langchain_tests.unit_tests import ToolsUnitTests

from builder.locks import LockManager
from builder.sandbox.local import LocalSandbox
from builder.settings import Settings
from builder.tools.context import ToolContext
from tests.tools.conftest import builtin_registry

EXAMPLES: dict[str, dict[str, Any]] = {
    "analyze_project_state": {"include_file_contents": True},
    "batch_write_files": {"files": [{"path": "a.html", "content": "<p>a</p>"}]},
    "check_build": {},
    "delete_file": {"path": "old.html"},
    "edit_file": {"path": "index.html", "search": "<h1>Hi</h1>", "replace": "<h1>Hello</h1>"},
    "get_dev_server_status": {"log_lines": 20},
    "get_project_structure": {"include_contents": False},
    "install_packages": {"packages": ["react", "@types/react@^18"], "dev": True},
    "list_files": {"path": "src", "recursive": True},
    "mark_step_complete": {"step": 1, "notes": "done"},
    "plan_changes": {"goal": "A blog", "steps": ["Layout", "Posts"]},
    "publish_project": {"publisher": "github", "repo": "bakery", "create_repository": True},
    "read_file": {"path": "index.html", "offset": 1, "limit": 50},
    "rename_file": {"path": "a.html", "new_path": "b.html"},
    "run_command": {"command": "npm run build", "cwd": ".", "timeout": 60},
    "screenshot_preview": {},
    "search_files": {"pattern": "TODO", "path": "src"},
    "start_dev_server": {"command": "npm run dev", "port": 5173},
    "write_file": {"path": "index.html", "content": "<h1>Hi</h1>"},
}


class BuiltinToolTests(ToolsUnitTests):
    """The standard tests for one built-in tool, bound to a fresh context."""

    tool_name = ""

    @property
    def tool_constructor(self) -> BaseTool:
        settings = Settings()
        ctx = ToolContext(
            sandbox=LocalSandbox("standard", settings=settings),
            project_id="standard",
            settings=settings,
            locks=LockManager(None, timeout=5),
        )
        return builtin_registry().as_langchain_tool(self.tool_name, ctx)

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return EXAMPLES[self.tool_name]


for _name in EXAMPLES:
    _class_name = "Test" + "".join(part.capitalize() for part in _name.split("_"))
    globals()[_class_name] = type(_class_name, (BuiltinToolTests,), {"tool_name": _name})


def test_every_builtin_tool_has_standard_tests() -> None:
    assert sorted(EXAMPLES) == builtin_registry().names()
