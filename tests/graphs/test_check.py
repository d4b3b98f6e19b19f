"""The end-of-turn check, seen at the wire: a model speaking OpenAI's API is told what
the dev server and the build report, and fixes it before the turn ends."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import SecretStr

from builder.graphs.check import CHECK_MESSAGE_NAME
from builder.graphs.context import RunContext
from builder.graphs.web_builder import build_web_builder_graph
from builder.locks import LockManager
from builder.models import load_chat_model
from builder.plugins import get_starter_registry
from builder.sandbox.local import LocalSandbox
from builder.settings import Settings
from builder.starters import starter_files
from builder.tools import shell
from builder.tools.context import ToolContext
from builder.tools.devserver import log_errors
from tests.models.openai_server import OpenAIServer, completion
from tests.tools.conftest import builtin_registry

# A dev server with a compile step, as Vite or webpack have one: it compiles data.json at
# start and whenever it changes, prints the error with file, line and column or that it
# compiled, and serves the directory.
DEV_SERVER = """\
import http.server, json, os, sys, threading, time

def compile_once():
    try:
        json.load(open("data.json"))
        print("compiled successfully", flush=True)
    except ValueError as exc:
        print(f"error: data.json:{exc.lineno}:{exc.colno}: {exc.msg}", flush=True)

compile_once()
seen = os.stat("data.json").st_mtime_ns
handler = http.server.SimpleHTTPRequestHandler
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
while True:
    time.sleep(0.1)
    now = os.stat("data.json").st_mtime_ns
    if now != seen:
        seen = now
        compile_once()
"""
BROKEN = '{"menu": ["bread", ]}\n'
FIXED = '{"menu": ["bread"]}\n'


@pytest.fixture
async def sandbox(settings: Settings) -> AsyncIterator[LocalSandbox]:
    box = LocalSandbox(str(uuid.uuid4()), settings=settings)
    yield box
    await box.close()


def _settings(server: OpenAIServer, settings: Settings, **overrides: Any) -> Settings:
    return settings.model_copy(
        update={
            "model_base_url": server.base_url,
            "model_api_key": SecretStr("sk-test"),
            "model_retries": 0,
            **overrides,
        }
    )


async def _turn(
    settings: Settings, sandbox: LocalSandbox, prompt: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    graph = build_web_builder_graph(
        model=load_chat_model("openai:gpt-test", settings=settings),
        tools=builtin_registry(),
        settings=settings,
        checkpointer=InMemorySaver(),
    )
    ctx = RunContext(
        sandbox=sandbox, locks=LockManager(None, timeout=5), settings=settings, run_id="run-1"
    )
    config: Any = {"configurable": {"thread_id": sandbox.project_id}}
    events: list[dict[str, Any]] = []
    async for mode, chunk in graph.astream(
        {"messages": [("user", prompt)], "run_id": "run-1", "run_steps": 0, "run_tokens": 0},
        config,
        context=ctx,
        stream_mode=["custom", "updates"],
        durability="sync",
    ):
        if mode == "custom" and chunk.get("event") == "check":
            events.append(chunk)
    await ctx.locks.close()
    return (await graph.aget_state(config)).values, events


def _write(call_id: str, path: str, content: str) -> dict[str, Any]:
    return {"id": call_id, "name": "write_file", "args": {"path": path, "content": content}}


def _start() -> dict[str, Any]:
    return {
        "id": "call_start",
        "name": "start_dev_server",
        "args": {"command": "python3 devserver.py {port}"},
    }


async def test_a_dev_server_error_reaches_the_model_and_its_fix_ends_the_turn(
    settings: Settings, sandbox: LocalSandbox
) -> None:
    replies = [
        completion(
            "Writing the menu and starting the server.",
            tool_calls=[
                _write("call_1", "devserver.py", DEV_SERVER),
                _write("call_2", "data.json", BROKEN),
                _start(),
            ],
        ),
        completion("The menu is ready."),
        completion("Fixing the trailing comma.", tool_calls=[_write("call_3", "data.json", FIXED)]),
        completion("Fixed: the menu compiles."),
    ]
    with OpenAIServer(*replies) as server:
        state, events = await _turn(_settings(server, settings), sandbox, "A bakery menu")
        requests = list(server.requests)

    # What the provider received after the check: the dev server's error, with its file,
    # line and column, as a user-role message named for the check.
    assert len(requests) == 4
    told = requests[2]["messages"][-1]
    assert told["role"] == "user" and told.get("name") == CHECK_MESSAGE_NAME
    assert told["content"].startswith("Automatic check of your changes (not the user)")
    assert (
        "dev server: its log shows errors:\nerror: data.json:1:20: Expecting value"
        in (told["content"])
    )
    # Earlier requests carry no check: nothing had been answered yet.
    assert not any(m.get("name") == CHECK_MESSAGE_NAME for m in requests[1]["messages"])
    # The fix the model made is applied, the second check passes, and the turn's last
    # message says so.
    assert await sandbox.read_file("data.json") == FIXED.encode()
    assert [e["passed"] for e in events] == [False, True]
    assert state["stop_reason"] == "done" and state["build_status"] == "done"
    assert state["messages"][-1].content == (
        "The automatic check passed: (dev server) No errors in the dev server's log."
    )
    assert state["check"] == {"passed": True, "report": "", "run_id": "run-1", "rounds": 1}


async def test_a_model_that_does_not_fix_ends_the_turn_with_the_check_failed(
    settings: Settings, sandbox: LocalSandbox
) -> None:
    replies = [
        completion(
            tool_calls=[
                _write("call_1", "devserver.py", DEV_SERVER),
                _write("call_2", "data.json", BROKEN),
                _start(),
            ]
        ),
        completion("The menu is ready."),
    ]
    with OpenAIServer(*replies) as server:
        state, events = await _turn(
            _settings(server, settings, check_rounds=2), sandbox, "A bakery menu"
        )
        requests = list(server.requests)

    # Told twice (the model answered without changing anything); the third answer ends
    # the turn with the check failed, which the last message says.
    assert len(requests) == 4
    named = [[m for m in r["messages"] if m.get("name") == CHECK_MESSAGE_NAME] for r in requests]
    assert [len(found) for found in named] == [0, 0, 1, 2]
    assert state["stop_reason"] == "check_failed" and state["build_status"] == "failed"
    last = state["messages"][-1].content
    assert last.startswith("The automatic check still fails:\n\ndev server: its log")
    assert "error: data.json:1:20: Expecting value" in last
    assert [e["passed"] for e in events] == [False, False, False]


async def test_the_check_is_off_with_zero_rounds_and_skipped_when_nothing_changed(
    settings: Settings, sandbox: LocalSandbox
) -> None:
    replies = [
        completion(tool_calls=[_write("call_1", "data.json", BROKEN)]),
        completion("Done."),
    ]
    with OpenAIServer(*replies) as server:
        state, events = await _turn(
            _settings(server, settings, check_rounds=0), sandbox, "A bakery menu"
        )
    assert (state["stop_reason"], events) == ("done", [])

    with OpenAIServer(completion("Hello!")) as server:
        state, events = await _turn(_settings(server, settings), sandbox, "Hi")
        assert len(server.requests) == 1
    # A new thread whose turn changed nothing and has no dev server: nothing to check.
    assert (state["stop_reason"], events, state["messages"][-1].content) == ("done", [], "Hello!")


def test_dev_server_errors_are_those_after_its_last_rebuild() -> None:
    log = [
        "VITE v7.3.8  ready in 312 ms",
        "\x1b[31m[vite] Internal server error: Transform failed with 1 error:\x1b[39m",
        '/workspace/src/App.tsx:4:10: ERROR: Expected ";" but found "}"',
        "  Plugin: vite:esbuild",
        "  File: /workspace/src/App.tsx:4:10",
        "  4 |  return <main>}",
        "  5 | }",
        "found 0 errors",
    ]
    assert log_errors(log) == [
        "[vite] Internal server error: Transform failed with 1 error:",
        '/workspace/src/App.tsx:4:10: ERROR: Expected ";" but found "}"',
        "  Plugin: vite:esbuild",
        "  File: /workspace/src/App.tsx:4:10",
        "  4 |  return <main>}",
        "  5 | }",
    ]
    assert log_errors([*log, "12:01:02 [vite] (client) hmr update /src/App.tsx"]) == []


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js and npm")
async def test_a_type_error_from_the_build_reaches_the_model_with_file_and_line(
    settings: Settings, sandbox: LocalSandbox
) -> None:
    settings = settings.model_copy(update={"timeout_install": 600})
    for path, data in starter_files(get_starter_registry().get("vite-react-ts")).items():
        await sandbox.write_file(path, data)
    ctx = ToolContext(
        sandbox=sandbox,
        project_id=sandbox.project_id,
        settings=settings,
        locks=LockManager(None, timeout=5),
    )
    installed = await shell.install_packages(ctx=ctx)
    assert installed.startswith("Installed with npm:"), installed
    app = (await sandbox.read_file("src/App.tsx")).decode()
    typed = "export default function App() {\n"
    broken = typed + '  const year: number = "2026";\n  console.log(year);\n'
    fixed = typed + "  const year: number = 2026;\n  console.log(year);\n"

    def edit(call_id: str, old: str, new: str) -> dict[str, Any]:
        return {
            "id": call_id,
            "name": "edit_file",
            "args": {"path": "src/App.tsx", "search": old, "replace": new},
        }

    replies = [
        completion(tool_calls=[edit("call_1", typed, broken)]),
        completion("Added the year."),
        completion(tool_calls=[edit("call_2", broken, fixed)]),
        completion("The year is a number now."),
    ]
    with OpenAIServer(*replies) as server:
        state, events = await _turn(_settings(server, settings), sandbox, "Show the year")
        requests = list(server.requests)
    await ctx.locks.close()

    told = requests[2]["messages"][-1]
    assert told.get("name") == CHECK_MESSAGE_NAME
    assert "build: The build fails: `npm run build` reported 1 error:\n" in told["content"]
    assert (
        "- src/App.tsx:2:9: TS2322: Type 'string' is not assignable to type 'number'."
        in (told["content"])
    )
    assert (await sandbox.read_file("src/App.tsx")).decode() == app.replace(typed, fixed)
    assert [e["passed"] for e in events] == [False, True]
    assert state["stop_reason"] == "done"
    assert state["messages"][-1].content == (
        "The automatic check passed: (build) The build passes (npm run build)."
    )
    assert json.loads(await sandbox.read_file("package.json"))["scripts"]["build"]


async def test_only_the_model_s_own_answer_is_checked_not_a_state_update(
    settings: Settings,
) -> None:
    graph = build_web_builder_graph(
        model="scripted:demo", tools=builtin_registry(), checkpointer=InMemorySaver()
    )
    config: Any = {"configurable": {"thread_id": "t"}}
    answer = AIMessage("Written.", id="answer-1")
    update = {"messages": [HumanMessage("hi"), answer], "files": {"index.html": "0" * 64}}
    await graph.aupdate_state(config, update, as_node="persist")
    assert (await graph.aget_state(config)).next == ()
    # The same answer made by the model in this run is checked.
    await graph.aupdate_state(config, {"model_message_id": "answer-1"}, as_node="persist")
    assert (await graph.aget_state(config)).next == ("check",)
