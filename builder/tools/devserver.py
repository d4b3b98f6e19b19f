"""The project's dev server: ``start_dev_server`` and ``get_dev_server_status``."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field

from builder.errors import NotFound
from builder.sandbox.base import ProcessInfo, Sandbox
from builder.settings import Settings
from builder.tools.context import DevServerStatus, ToolContext

__all__ = [
    "DEV_SERVER",
    "FRAMEWORKS",
    "NPM_DEV_COMMAND",
    "SCRIPTS",
    "STATIC_COMMAND",
    "DevCommand",
    "DevServerLaunch",
    "command_for",
    "default_command",
    "dev_command",
    "dev_command_from_scripts",
    "get_dev_server_status",
    "launch_dev_server",
    "log_errors",
    "start_dev_server",
]

DEV_SERVER = "dev-server"
"""The sandbox process name of the dev server."""
NPM_DEV_COMMAND = "npm run dev -- --port {port}"
STATIC_COMMAND = "python3 -m http.server {port} --bind ${HOST:-127.0.0.1}"
"""Serves plain HTML/CSS/JS; binds to loopback unless the sandbox sets ``HOST``."""
PROBE = "python3 -c \"import socket; socket.create_connection(('localhost', {port}), 1).close()\""
"""Succeeds when something inside the sandbox accepts connections on the port."""
POLL_SECONDS = 0.5
LOG_LINES_ON_FAILURE = 30
EXIT_DRAIN_SECONDS = 0.2
ACCEPT_GRACE_SECONDS = 0.2
"""How long a probe connection must stay open to count as a listening server."""


SCRIPTS = ("dev", "start", "serve", "preview")
"""package.json scripts that run a server, in the order they are looked for."""
FRAMEWORKS: dict[str, tuple[str, int]] = {
    "vite": ("--port", 5173),
    "astro": ("--port", 4321),
    "next": ("--port", 3000),
    "nuxt": ("--port", 3000),
    "nuxi": ("--port", 3000),
    "ng": ("--port", 4200),
    "gatsby": ("--port", 8000),
    "webpack": ("--port", 8080),
    "webpack-dev-server": ("--port", 8080),
    "parcel": ("--port", 1234),
    "serve": ("--listen", 3000),
    "http-server": ("-p", 8080),
}
"""A server's executable → (its port option, the port it listens on without one)."""
_SUBCOMMAND_PORTS = {("vite", "preview"): 4173}
_EXPLICIT_PORT = re.compile(r"(?:--port|--listen|-p|-l)[= ]+(\d{2,5})\b|\bPORT=(\d{2,5})\b")
_SEPARATORS = re.compile(r"&&|\|\||[;&|]")
_WRAPPERS = {"npx", "cross-env", "env", "exec", "pnpm", "yarn", "bunx", "dotenv", "--"}


@dataclass(frozen=True, slots=True)
class DevCommand:
    """How to start a project's dev server."""

    command: str
    """The command (``{port}`` is replaced by the port)."""
    port: int | None = None
    """The port it listens on; None when the sandbox chooses (given as ``PORT``)."""


def _tool(segment: str) -> tuple[str, str]:
    """The executable a script segment runs and the word after it (its subcommand)."""
    words = [
        word
        for word in segment.split()
        if "=" not in word.split("/")[0] and word not in _WRAPPERS and not word.startswith("-")
    ]
    if not words:
        return "", ""
    return words[0].rsplit("/", 1)[-1], words[1] if len(words) > 1 else ""


def dev_command_from_scripts(scripts: dict[str, object]) -> DevCommand | None:
    """The dev server a package.json's scripts start, or None when none of :data:`SCRIPTS`.

    The first of ``dev``, ``start``, ``serve`` and ``preview`` is run with ``npm run``.
    Its port: the one the script names (``--port 3000``, ``-p 3000``, ``PORT=3000``);
    else, when the script ends with a server from :data:`FRAMEWORKS`, the sandbox's
    port through that server's option; else, when such a server runs earlier in the
    script (it cannot be given an option), that server's default port; else the
    sandbox's port, given to ``dev`` as ``--port`` (what most dev servers take) and to
    the others only as ``PORT`` (Create React App, Express apps, most servers read it).
    """
    for name in SCRIPTS:
        script = scripts.get(name)
        if not isinstance(script, str):
            continue
        run = f"npm run {name}"
        explicit = _EXPLICIT_PORT.search(script)
        if explicit:
            return DevCommand(run, int(explicit.group(1) or explicit.group(2)))
        segments = [part for part in _SEPARATORS.split(script) if part.strip()]
        tools = [_tool(part) for part in segments]
        last = tools[-1][0] if tools else ""
        if last in FRAMEWORKS:
            return DevCommand(f"{run} -- {FRAMEWORKS[last][0]} {{port}}")
        for tool, sub in tools:
            if tool in FRAMEWORKS:
                return DevCommand(run, _SUBCOMMAND_PORTS.get((tool, sub), FRAMEWORKS[tool][1]))
        return DevCommand(f"{run} -- --port {{port}}" if name == "dev" else run)
    return None


async def dev_command(sandbox: Sandbox) -> DevCommand:
    """The project's dev server: from package.json's scripts
    (:func:`dev_command_from_scripts`), else a static file server for plain HTML."""
    try:
        manifest = json.loads(await sandbox.read_file("package.json"))
    except (NotFound, ValueError):
        return DevCommand(STATIC_COMMAND)
    scripts = manifest.get("scripts") if isinstance(manifest, dict) else None
    found = dev_command_from_scripts(scripts) if isinstance(scripts, dict) else None
    return found or DevCommand(STATIC_COMMAND)


async def command_for(sandbox: Sandbox) -> str:
    """The command of :func:`dev_command`."""
    return (await dev_command(sandbox)).command


async def default_command(ctx: ToolContext) -> str:
    """:func:`command_for` the run's sandbox."""
    return await command_for(ctx.sandbox)


def _status(info: ProcessInfo, ctx: ToolContext) -> DevServerStatus:
    """What the run reports (state, chat events, the CLI): the public preview URL."""
    from builder.preview.urls import client_preview_url

    return DevServerStatus(
        running=info.running,
        command=info.command,
        port=info.port,
        preview_url=client_preview_url(ctx.settings, ctx.project_id, info),
        exit_code=info.exit_code,
    )


def _logs(info: ProcessInfo) -> str:
    return "\n".join(info.logs) if info.logs else "(no output)"


async def _answers(sandbox: Sandbox, port: int) -> bool:
    if getattr(sandbox, "confinement", None) is not None:
        # A confined local command has a network of its own; its servers' ports are
        # reachable from the host, so the port is probed from here. With isolated
        # networking pasta accepts on the host's side, then closes the connection at
        # once when nothing listens inside: a connection that stays open is a server.
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
        except (OSError, TimeoutError):
            return False
        try:
            return await asyncio.wait_for(reader.read(1), ACCEPT_GRACE_SECONDS) != b""
        except TimeoutError:
            return True
        except OSError:
            return False
        finally:
            writer.close()
    result = await sandbox.exec(PROBE.format(port=port), timeout=5)
    return result.ok


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ERROR_LINE = re.compile(
    r"\berror\b|\bfailed to\b|cannot find (module|name)|unexpected token|\bexception\b",
    re.IGNORECASE,
)
_NOT_AN_ERROR = re.compile(r"\b(0|no) errors?\b|without errors", re.IGNORECASE)
_RECOVERED = re.compile(
    r"hmr update|page reload|ready in|compiled successfully|built in|watching for file changes",
    re.IGNORECASE,
)
"""Output after which earlier errors no longer hold: the server rebuilt or reloaded."""
ERROR_CONTEXT_LINES = 4
MAX_ERROR_LINES = 20


def log_errors(lines: list[str]) -> list[str]:
    """The errors a dev server printed that still hold: build and compile errors after
    its last successful rebuild, each with the lines that follow it (file, line, code
    frame), at most :data:`MAX_ERROR_LINES` lines."""
    clean = [_ANSI.sub("", line).rstrip() for line in lines]
    start = max((i + 1 for i, line in enumerate(clean) if _RECOVERED.search(line)), default=0)
    shown: list[int] = []
    for index in range(start, len(clean)):
        line = clean[index]
        if _ERROR_LINE.search(line) and not _NOT_AN_ERROR.search(line):
            end = min(index + 1 + ERROR_CONTEXT_LINES, len(clean))
            shown.extend(i for i in range(index, end) if not shown or i > shown[-1])
    return [clean[i] for i in shown if clean[i].strip()][:MAX_ERROR_LINES]


@dataclass(frozen=True, slots=True)
class DevServerLaunch:
    """How starting the dev server went."""

    info: ProcessInfo
    """The server's state when the wait ended."""
    outcome: Literal["answering", "exited", "not_answering"]
    command: str
    """The command as asked for (``{port}`` not yet replaced)."""


async def launch_dev_server(
    sandbox: Sandbox,
    *,
    settings: Settings,
    command: str | None = None,
    port: int | None = None,
) -> DevServerLaunch:
    """Start (or restart) the dev server and wait until it answers, exits, or time runs out.

    The agent's ``start_dev_server`` tool and the HTTP API both start servers here.

    Args:
        sandbox: The project's sandbox.
        settings: ``timeout_dev_server`` bounds the wait.
        command: The command; default :func:`dev_command` of the sandbox (with its port).
        port: The port; chosen by the sandbox when None (and the command names none).
    """
    if command is None:
        found = await dev_command(sandbox)
        command, port = found.command, port or found.port
    chosen = command
    info = await sandbox.start_process(DEV_SERVER, chosen, port=port)
    loop = asyncio.get_running_loop()
    # Leave a moment of the dev_server budget to report instead of being cut off.
    deadline = loop.time() + max(settings.timeout_dev_server - 2, 1)
    while True:
        current = await sandbox.process_info(DEV_SERVER, log_lines=LOG_LINES_ON_FAILURE)
        if current is None or not current.running:
            # The output reader may still be draining the pipe of a process that just
            # exited: give it a moment so the report shows why it exited.
            await asyncio.sleep(EXIT_DRAIN_SECONDS)
            final = await sandbox.process_info(DEV_SERVER, log_lines=LOG_LINES_ON_FAILURE)
            return DevServerLaunch(final or current or info, "exited", chosen)
        if current.port is not None and await _answers(sandbox, current.port):
            return DevServerLaunch(current, "answering", chosen)
        if loop.time() >= deadline:
            return DevServerLaunch(current, "not_answering", chosen)
        await asyncio.sleep(POLL_SECONDS)


async def start_dev_server(
    command: str | None = None,
    port: Annotated[int | None, Field(ge=1, le=65535)] = None,
    *,
    ctx: ToolContext,
) -> str:
    """Start (or restart) the dev server and wait until it answers; returns the preview URL.

    Args:
        command: The command to run; `{port}` is replaced by the port. Defaults to
            the first of package.json's `dev`, `start`, `serve` and `preview` scripts,
            on the port the script names, else given to Vite, Astro, Next.js and other
            known servers through their port option (their default port when a later
            command in the script would get it) and to others as `$PORT`; else a
            static file server for plain HTML.
        port: The port to listen on; chosen automatically when omitted.
    """
    launch = await launch_dev_server(ctx.sandbox, settings=ctx.settings, command=command, port=port)
    current = launch.info
    ctx.effects.dev_server = status = _status(current, ctx)
    if launch.outcome == "exited":
        ctx.effects.error(f"dev server `{launch.command}` exited with code {current.exit_code}")
        return (
            f"The dev server exited with code {current.exit_code} before answering.\n"
            f"$ {current.command}\n{_logs(current)}"
        )
    if launch.outcome == "answering":
        return (
            f"Dev server running: {current.command}\n"
            f"Preview: {status.preview_url} (port {current.port})"
        )
    return (
        f"The dev server is running but port {current.port} is not answering yet; "
        f"check again with get_dev_server_status.\n{_logs(current)}"
    )


async def get_dev_server_status(
    log_lines: Annotated[int, Field(ge=1, le=500)] = 50, *, ctx: ToolContext
) -> str:
    """Report whether the dev server is running, its preview URL and its latest output.

    Args:
        log_lines: How many of the most recent output lines to show.
    """
    info = await ctx.sandbox.process_info(DEV_SERVER, log_lines=log_lines)
    if info is None:
        return "No dev server has been started; use start_dev_server."
    ctx.effects.dev_server = status = _status(info, ctx)
    if info.running:
        state = f"running on port {info.port}, preview {status.preview_url}"
    else:
        state = f"stopped (exit code {info.exit_code})"
    return f"Dev server {state}\n$ {info.command}\nLast output:\n{_logs(info)}"
