"""``langgraph dev`` serves builder's graph from the shipped ``langgraph.json``.

LangGraph's own in-memory dev server (what LangGraph Studio connects to) runs in a
subprocess with the repository's ``langgraph.json``; the official SDK creates a thread
and runs the graph on it with a scripted model. The run context comes from the
settings alone: the sandbox from a pool, the database the files are saved to.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from builder.graphs.hosted import HOSTED_USER
from builder.persistence.database import Database
from builder.persistence.projects import get_project
from builder.persistence.snapshots import read_file
from builder.persistence.users import get_or_create_user
from builder.settings import Settings
from tests.http.server import free_port
from tests.support.database import clone_database
from tests.support.langgraph_cli import langgraph_bin
from tests.support.scripts import call, write_script
from tests.support.services import drop_database

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
_START_SECONDS = 120
INDEX = "<title>Studio</title><h1>Studio</h1>\n"
ABOUT = "<title>About</title><h1>About</h1>\n"
PASSED = "The automatic check passed: (site checker) Checked {} under .: no problems found."


@dataclass(frozen=True)
class DevServer:
    """A running ``langgraph dev`` and where its graph keeps its data."""

    url: str
    database_url: str
    data_dir: Path


def _script(directory: Path) -> str:
    return write_script(
        directory,
        [
            [
                {
                    "content": "Writing the page.",
                    "tool_calls": [call("write_file", path="index.html", content=INDEX)],
                },
                {"content": "The page is ready."},
            ],
            [
                {
                    "content": "Adding a page.",
                    "tool_calls": [call("write_file", path="about.html", content=ABOUT)],
                },
                {"content": "The about page is ready."},
            ],
        ],
    )


@pytest.fixture(scope="module")
def dev_server(
    tmp_path_factory: pytest.TempPathFactory, migrated_template: str
) -> Iterator[DevServer]:
    cli = langgraph_bin()
    base = tmp_path_factory.mktemp("langgraph-dev")
    database_url = clone_database(migrated_template)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BUILDER_")}
    env.update(
        {
            # An installed builder is importable anyway; the tests run from the checkout.
            "PYTHONPATH": str(ROOT),
            "BUILDER_DATABASE_URL": database_url,
            "BUILDER_DATA_DIR": str(base / "data"),
            "BUILDER_MODEL": _script(base),
            "LANGSMITH_TRACING": "false",
            "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        }
    )
    log_path = base / "langgraph-dev.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(cli),
                "dev",
                "--no-browser",
                "--no-reload",
                "--port",
                str(port),
                "--config",
                str(ROOT / "langgraph.json"),
            ],
            cwd=base,  # where the dev server keeps its own state
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + _START_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"langgraph dev exited:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"langgraph dev did not start:\n{log_path.read_text()}")
            time.sleep(0.3)
        yield DevServer(url, database_url, base / "data")
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(log_path.read_text()[-8000:])
        drop_database(database_url)


@pytest.fixture
async def client(dev_server: DevServer) -> AsyncIterator[LangGraphClient]:
    async with get_client(url=dev_server.url) as lg:
        yield lg


async def _saved(server: DevServer, project_id: uuid.UUID, path: str) -> bytes:
    db = Database(server.database_url, settings=Settings(data_dir=server.data_dir))
    try:
        owner = await get_or_create_user(db, name=HOSTED_USER)
        await get_project(db, user_id=owner.id, project_id=project_id)
        return await read_file(db, project_id=project_id, path=path)
    finally:
        await db.dispose()


async def test_langgraph_dev_runs_the_graph_from_settings_alone(
    client: LangGraphClient, dev_server: DevServer
) -> None:
    assistants = await client.assistants.search(graph_id="web_builder")
    assert [a["graph_id"] for a in assistants] == ["web_builder"]
    # What Studio draws and the forms it shows.
    assistant_id = assistants[0]["assistant_id"]
    drawn = await client.assistants.get_graph(assistant_id)
    assert {"agent", "tools", "persist"} <= {node["id"] for node in drawn["nodes"]}
    schemas = await client.assistants.get_schemas(assistant_id)
    assert "messages" in schemas["input_schema"]["properties"]
    thread = await client.threads.create()
    thread_id = thread["thread_id"]

    run = await client.runs.create(
        thread_id,
        "web_builder",
        input={"messages": [{"role": "user", "content": "A studio page"}]},
    )
    await client.runs.join(thread_id, run["run_id"])
    finished = await client.runs.get(thread_id, run["run_id"])
    assert finished["status"] == "success"
    state = await client.threads.get_state(thread_id)
    values = state["values"]
    # The model's answer, then the end-of-turn check's verdict (the site checker's).
    assert values["messages"][-2]["content"] == "The page is ready."
    assert values["messages"][-1]["content"] == PASSED.format("1 page")
    assert [m["type"] for m in values["messages"]] == ["human", "ai", "tool", "ai", "ai"]
    assert values["messages"][2]["status"] == "success"
    assert set(values["files"]) == {"index.html"}
    assert (values["stop_reason"], values["build_status"], values["run_steps"]) == (
        "done",
        "done",
        2,
    )
    # The files were written in the thread's sandbox and saved as the project's version.
    workspace = dev_server.data_dir / "workspaces" / thread_id
    assert (workspace / "index.html").read_text() == INDEX
    assert await _saved(dev_server, uuid.UUID(thread_id), "index.html") == INDEX.encode()

    # A second turn starts afresh (its own steps, tools run again) on the same files.
    second = await client.runs.wait(
        thread_id,
        "web_builder",
        input={"messages": [{"role": "user", "content": "Add an about page"}]},
    )
    assert isinstance(second, dict)
    assert second["messages"][-2]["content"] == "The about page is ready."
    assert second["messages"][-1]["content"] == PASSED.format("2 pages")
    assert set(second["files"]) == {"index.html", "about.html"}
    assert second["run_steps"] == 2
    assert await _saved(dev_server, uuid.UUID(thread_id), "about.html") == ABOUT.encode()
