"""run_command and install_packages."""

from __future__ import annotations

from typing import Any

import pytest

from builder.sandbox.base import CommandResult
from builder.sandbox.local import LocalSandbox
from builder.tools import shell
from builder.tools.context import ToolContext
from tests.tools.conftest import Caller


class RecordingSandbox:
    """Runs ``echo`` instead of each command and records what was asked for."""

    def __init__(self, inner: LocalSandbox) -> None:
        self._inner = inner
        self.commands: list[tuple[str, float | None]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def exec(
        self,
        command: str,
        *,
        cwd: str = ".",
        timeout: float | None = None,
        output_limit: int | None = None,
    ) -> CommandResult:
        self.commands.append((command, timeout))
        return await self._inner.exec(f"echo ran {command!r}", cwd=cwd)


async def test_run_command_reports_exit_code_and_output(call: Caller, ctx: ToolContext) -> None:
    result = await call("run_command", command="echo out; echo err >&2; exit 3")
    head, rest = result.split("\n", 1)
    assert head == "$ echo out; echo err >&2; exit 3"
    assert rest.startswith("exit code 3 (")
    assert rest.endswith("s)\nstdout:\nout\nstderr:\nerr")
    assert list(ctx.effects.errors) == ["`echo out; echo err >&2; exit 3` exited with code 3: err"]
    assert ctx.effects.rescan is True
    # The graph's tool_end event (and so the CLI's mark) reads this: failed, not ✓.
    assert ctx.effects.failed is True


async def test_a_command_that_succeeds_is_not_failed(call: Caller, ctx: ToolContext) -> None:
    await call("run_command", command="true")
    assert ctx.effects.failed is False


async def test_run_command_in_a_subdirectory(call: Caller, sandbox: LocalSandbox) -> None:
    await sandbox.write_file("app/x.txt", b"")
    assert (await call("run_command", command="ls", cwd="app")).endswith("stdout:\nx.txt")


async def test_run_command_timeout_kills_and_is_capped(
    ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    result = await shell.run_command("sleep 30", timeout=0.3, ctx=ctx)
    assert "(timeout)" in result.splitlines()[1]
    recorder = RecordingSandbox(sandbox)
    ctx.sandbox = recorder  # type: ignore[assignment]
    await shell.run_command("true", timeout=10_000, ctx=ctx)
    await shell.run_command("true", ctx=ctx)
    assert recorder.commands == [
        ("true", ctx.settings.timeout_install),
        ("true", ctx.settings.timeout_sandbox),
    ]


async def test_install_packages_builds_a_safe_npm_command(
    ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    await sandbox.write_file("package.json", b'{"name": "site"}')
    recorder = RecordingSandbox(sandbox)
    ctx.sandbox = recorder  # type: ignore[assignment]
    await shell.install_packages(["react", "@types/node@^20.1", "vite@~5"], dev=True, ctx=ctx)
    await shell.install_packages(["left-pad"], ctx=ctx)
    assert recorder.commands == [
        (
            "npm install --save-dev --no-audit --no-fund react '@types/node@^20.1' 'vite@~5'",
            ctx.settings.timeout_install,
        ),
        ("npm install --save --no-audit --no-fund left-pad", ctx.settings.timeout_install),
    ]


@pytest.mark.parametrize(
    "name",
    [
        "react; rm -rf /",
        "react && curl x",
        "$(whoami)",
        "`id`",
        "a|b",
        "react@>=1 <2",
        "react >x",
        "name with space",
        "../evil",
        "--registry=http://evil",
        "",
        "React",
    ],
)
async def test_install_packages_rejects_unsafe_names(call: Caller, name: str) -> None:
    message = await call.error("install_packages", packages=["ok", name])
    assert message.startswith("Error (invalid_input):")


def test_npm_package_pattern() -> None:
    good = [
        "react",
        "@scope/pkg",
        "lodash.debounce",
        "pkg@1.2.3",
        "pkg@latest",
        "a-b_c@^1.0.0-rc.1",
    ]
    assert all(shell.NPM_PACKAGE.fullmatch(name) for name in good)
