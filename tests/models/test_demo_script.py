"""The bundled demo script (scripted:demo): real tool names and arguments, edits that
apply, and a site whose pages are well-formed and whose internal links resolve."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from builder.models import ScriptedChatModel, load_chat_model
from builder.models.script import ChatScript
from builder.settings import Settings

# The built-in tools and the arguments each takes: (required, optional).
TOOLS: dict[str, tuple[set[str], set[str]]] = {
    "write_file": ({"path", "content"}, set()),
    "read_file": ({"path"}, {"offset", "limit"}),
    "edit_file": ({"path", "search", "replace"}, set()),
    "batch_write_files": ({"files"}, set()),
    "list_files": (set(), {"path", "recursive"}),
    "get_project_structure": (set(), {"include_contents"}),
    "delete_file": ({"path"}, set()),
    "rename_file": ({"path", "new_path"}, set()),
    "search_files": ({"pattern"}, {"path"}),
    "run_command": ({"command"}, {"cwd", "timeout"}),
    "install_packages": ({"packages"}, {"dev"}),
    "start_dev_server": (set(), {"command", "port"}),
    "get_dev_server_status": (set(), {"log_lines"}),
    "plan_changes": ({"goal", "steps"}, set()),
    "mark_step_complete": ({"step"}, {"notes"}),
    "analyze_project_state": (set(), {"include_file_contents"}),
}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}  # fmt: skip
PAGES = {"index.html", "about.html", "contact.html"}


@pytest.fixture(scope="module")
def demo() -> ScriptedChatModel:
    model = load_chat_model("scripted:demo", settings=Settings())
    assert isinstance(model, ScriptedChatModel)
    return model


def _apply(files: dict[str, str], call: dict[str, Any]) -> None:
    """Do to an in-memory project what the tool would do to the workspace."""
    name, args = call["name"], call["args"]
    if name == "write_file":
        files[args["path"]] = args["content"]
    elif name == "batch_write_files":
        for item in args["files"]:
            assert set(item) == {"path", "content"}
            files[item["path"]] = item["content"]
    elif name == "edit_file":
        text = files[args["path"]]
        assert text.count(args["search"]) == 1, f"{args['search']!r} in {args['path']}"
        files[args["path"]] = text.replace(args["search"], args["replace"])
    elif name in {"read_file", "delete_file"}:
        assert args["path"] in files
        if name == "delete_file":
            del files[args["path"]]


def _play(model: ScriptedChatModel, turns: int) -> tuple[dict[str, str], list[BaseMessage]]:
    files: dict[str, str] = {}
    history: list[BaseMessage] = []
    for turn in range(turns):
        history.append(HumanMessage(f"request {turn}"))
        while True:
            answer = model.invoke(history)
            history.append(answer)
            if not answer.tool_calls:
                break
            for call in answer.tool_calls:
                _apply(files, dict(call))
                history.append(ToolMessage("ok", tool_call_id=call["id"]))
    return files, history


def test_every_call_uses_a_builtin_tool_with_its_real_arguments(demo: ScriptedChatModel) -> None:
    script: ChatScript = demo.script
    for t, turn in enumerate(script.turns):
        for r, response in enumerate(turn.responses):
            for call in response.tool_calls:
                assert call.name in TOOLS, (t, r, call.name)
                required, optional = TOOLS[call.name]
                assert required <= set(call.args) <= required | optional, (t, r, call.name)
    # It binds against exactly the built-in tool set.
    specs = [{"type": "function", "function": {"name": n, "parameters": {}}} for n in TOOLS]
    demo.bind_tools(specs)


def test_the_first_turn_plans_builds_edits_previews_and_summarises(
    demo: ScriptedChatModel,
) -> None:
    _, history = _play(demo, turns=1)
    answers = [m for m in history if isinstance(m, AIMessage)]
    names = [call["name"] for m in answers for call in m.tool_calls]
    assert names[0] == "plan_changes"
    assert names[-3:] == ["start_dev_server", "get_dev_server_status", "mark_step_complete"]
    assert {"write_file", "batch_write_files", "edit_file"} <= set(names)
    steps = answers[0].tool_calls[0]["args"]["steps"]
    marked = [c["args"]["step"] for m in answers for c in m.tool_calls
              if c["name"] == "mark_step_complete"]  # fmt: skip
    assert marked == list(range(1, len(steps) + 1))
    final = answers[-1]
    assert not final.tool_calls and "index.html" in str(final.content)


class _PageCheck(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.links: list[str] = []
        self.title = ""
        self.labels: set[str] = set()
        self.fields: dict[str, dict[str, str | None]] = {}
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag not in VOID:
            self.stack.append(tag)
        self._in_title = tag == "title"
        for attr in ("href", "src", "action"):
            if values.get(attr):
                self.links.append(str(values[attr]))
        if tag == "img" and not (values.get("alt") or "").strip():
            self.problems.append(f"img without alt: {values.get('src')}")
        if tag == "label" and values.get("for"):
            self.labels.add(str(values["for"]))
        if tag in {"input", "textarea"}:
            self.fields[str(values.get("name"))] = values

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else ''}>")
            return
        self.stack.pop()
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def _check(text: str) -> _PageCheck:
    page = _PageCheck()
    page.feed(text)
    page.close()
    assert page.stack == [] and page.problems == []
    return page


def _internal(link: str) -> str | None:
    parts = urlsplit(link)
    if parts.scheme or parts.netloc or not parts.path:
        return None  # external, mailto:, tel:, or a fragment on the same page
    return parts.path


def test_the_site_is_well_formed_and_its_internal_links_resolve(demo: ScriptedChatModel) -> None:
    files, _ = _play(demo, turns=1)
    assert set(files) == PAGES | {"styles.css", "script.js", "logo.svg"}
    for name in sorted(PAGES):
        page = _check(files[name])
        assert page.title.strip().startswith("Harbor Lane Bakery"), name
        internal = {path for link in page.links if (path := _internal(link))}
        assert internal - set(files) == set(), name
        assert PAGES | {"styles.css", "script.js", "logo.svg"} <= internal, name
    contact = _check(files["contact.html"])
    assert set(contact.fields) == {"name", "email", "message"}
    for field, attrs in contact.fields.items():
        assert "required" in attrs and attrs.get("id") in contact.labels, field
    assert "<h1>Fresh bread and pastries, baked every morning</h1>" in files["index.html"]


def test_later_turns_edit_the_site_and_cycling_keeps_edits_applicable(
    demo: ScriptedChatModel,
) -> None:
    files, history = _play(demo, turns=4)  # build, edit, build again, edit again
    assert "--accent: #1f5f8b;" in files["styles.css"]
    finals = [m for m in history if isinstance(m, AIMessage) and not m.tool_calls]
    assert len(finals) == 4


def test_the_demo_answers_the_helper_tasks(demo: ScriptedChatModel) -> None:
    assert demo.script.tasks.generate_title == "Harbor Lane Bakery website"
    assert (demo.script.tasks.improve_prompt or "").startswith("Build a small static website")
