"""start_dev_server and get_dev_server_status with real processes."""

from __future__ import annotations

import asyncio
import shutil
import urllib.request

import pytest

from builder.sandbox.local import LocalSandbox
from builder.tools import devserver
from builder.tools.context import DevServerStatus, ToolContext
from tests.tools.conftest import Caller


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (a local test URL)
        body: bytes = response.read()
        return body


async def test_default_command(ctx: ToolContext, sandbox: LocalSandbox) -> None:
    assert await devserver.default_command(ctx) == devserver.STATIC_COMMAND
    await sandbox.write_file("package.json", b'{"scripts": {"build": "vite build"}}')
    assert await devserver.default_command(ctx) == devserver.STATIC_COMMAND
    await sandbox.write_file("package.json", b'{"scripts": {"dev": "vite"}}')
    assert await devserver.default_command(ctx) == devserver.NPM_DEV_COMMAND
    await sandbox.write_file("package.json", b"{not json")
    assert await devserver.default_command(ctx) == devserver.STATIC_COMMAND


def test_the_dev_server_is_found_in_common_scripts_with_its_port() -> None:
    found = devserver.dev_command_from_scripts
    command = devserver.DevCommand
    assert found({"build": "vite build"}) is None
    # dev first; a server the sandbox's port can be given to gets it through its option
    assert found({"dev": "vite", "start": "next start"}) == command("npm run dev -- --port {port}")
    assert found({"start": "next start"}) == command("npm run start -- --port {port}")
    assert found({"serve": "npx serve dist"}) == command("npm run serve -- --listen {port}")
    assert found({"preview": "vite build && vite preview"}) == command(
        "npm run preview -- --port {port}"
    )
    # a port the script names is the port
    assert found({"start": "next start -p 4000"}) == command("npm run start", 4000)
    assert found({"start": "PORT=8081 node server.js"}) == command("npm run start", 8081)
    assert found({"serve": "http-server dist --port=9000"}) == command("npm run serve", 9000)
    # a server followed by another command keeps its default port
    assert found({"start": "astro dev & tsc -w"}) == command("npm run start", 4321)
    assert found({"preview": "vite preview; echo done"}) == command("npm run preview", 4173)
    # anything else gets the sandbox's port as $PORT (dev also as --port, as before)
    assert found({"start": "node server.js"}) == command("npm run start")
    assert found({"dev": "node server.js"}) == command("npm run dev -- --port {port}")


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm")
async def test_a_start_script_is_run_when_there_is_no_dev_script(
    call: Caller, ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    await sandbox.write_file("index.html", b"<h1>Started</h1>")
    await sandbox.write_file(
        "package.json",
        b'{"scripts": {"build": "true", "start": "python3 -m http.server $PORT"}}',
    )
    assert await devserver.default_command(ctx) == "npm run start"
    result = await call("start_dev_server")
    assert result.startswith("Dev server running: npm run start"), result
    status = ctx.effects.dev_server
    assert status is not None and status.port is not None
    assert b"Started" in await asyncio.to_thread(fetch, f"http://127.0.0.1:{status.port}/")
    await sandbox.stop_process(devserver.DEV_SERVER)


async def test_static_site_is_served_until_stopped(
    call: Caller, ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    assert await call("get_dev_server_status") == (
        "No dev server has been started; use start_dev_server."
    )
    await sandbox.write_file("index.html", b"<h1>Live</h1>")
    result = await call("start_dev_server")
    status = ctx.effects.dev_server
    assert status is not None and status.running and status.port is not None
    assert result == (
        f"Dev server running: {devserver.STATIC_COMMAND.replace('{port}', str(status.port))}\n"
        f"Preview: http://127.0.0.1:{status.port}/ (port {status.port})"
    )
    assert await asyncio.to_thread(fetch, f"http://127.0.0.1:{status.port}/index.html") == (
        b"<h1>Live</h1>"
    )
    report = await call("get_dev_server_status", log_lines=5)
    assert report.startswith(f"Dev server running on port {status.port}, preview ")
    await sandbox.stop_process(devserver.DEV_SERVER)
    report = await call("get_dev_server_status")
    assert report.startswith("Dev server stopped (exit code ")
    assert ctx.effects.dev_server is not None and ctx.effects.dev_server.running is False


async def test_a_server_that_exits_is_reported_with_its_output(
    call: Caller, ctx: ToolContext
) -> None:
    result = await call("start_dev_server", command="echo cannot find module vite; exit 7")
    assert result == (
        "The dev server exited with code 7 before answering.\n"
        "$ echo cannot find module vite; exit 7\ncannot find module vite"
    )
    assert ctx.effects.dev_server == DevServerStatus(
        running=False,
        command="echo cannot find module vite; exit 7",
        port=ctx.effects.dev_server.port if ctx.effects.dev_server else None,
        preview_url=ctx.effects.dev_server.preview_url if ctx.effects.dev_server else None,
        exit_code=7,
    )
    assert list(ctx.effects.errors) == [
        "dev server `echo cannot find module vite; exit 7` exited with code 7"
    ]


@pytest.mark.slow
async def test_a_server_that_never_answers_returns_before_the_budget(
    call: Caller, ctx: ToolContext
) -> None:
    ctx.settings = ctx.settings.model_copy(update={"timeout_dev_server": 3})
    result = await call("start_dev_server", command="sleep 60")
    assert result.startswith("The dev server is running but port ")
    assert "check again with get_dev_server_status" in result
