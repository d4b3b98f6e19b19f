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


NPM_404 = """npm error code E404
npm error 404 Not Found - GET https://registry.npmjs.org/@acme%2fno-such-widget - Not found
npm error 404
npm error 404  '@acme/no-such-widget@*' is not in this registry.
npm error 404
npm error 404 Note that you can also install from a
npm error 404 tarball, folder, http url, or git url.
npm error A complete log of this run can be found in: /home/sandbox/.npm/_logs/x-debug-0.log
"""
PNPM_NO_VERSION = """ ERR_PNPM_NO_MATCHING_VERSION  No matching version found for left-pad@99.99.99

This error happened while installing a direct dependency of /workspace

The latest release of left-pad is "1.3.0".
"""


@pytest.mark.parametrize(
    ("command", "output", "expected"),
    [
        (
            "npm install --save @acme/no-such-widget",
            NPM_404 + "\n" * 5000,
            "`npm install --save @acme/no-such-widget` failed (exit code 1): "
            "@acme/no-such-widget is not in the registry:\n"
            "npm error code E404\n"
            "npm error 404 Not Found - GET https://registry.npmjs.org/@acme%2fno-such-widget"
            " - Not found\n"
            "npm error 404  '@acme/no-such-widget@*' is not in this registry.\n"
            "npm error 404 Note that you can also install from a\n"
            "npm error 404 tarball, folder, http url, or git url.",
        ),
        (
            "pnpm add left-pad@99.99.99",
            PNPM_NO_VERSION,
            "`pnpm add left-pad@99.99.99` failed (exit code 1): "
            "left-pad@99.99.99 matches no published version:\n"
            "ERR_PNPM_NO_MATCHING_VERSION  No matching version found for left-pad@99.99.99",
        ),
    ],
)
async def test_a_failed_install_names_the_package_and_keeps_the_first_error_lines(
    ctx: ToolContext, command: str, output: str, expected: str
) -> None:
    result = CommandResult(command, 1, "", output, 2.0)
    assert await shell._install_report(ctx, result, "npm", []) == expected


@pytest.mark.slow
async def test_installing_a_package_that_does_not_exist_reports_it(
    ctx: ToolContext, sandbox: LocalSandbox
) -> None:
    """Real npm against the registry, in the sandbox the tool really uses."""
    await sandbox.write_file("package.json", b'{"name": "site", "version": "0.0.0"}')
    missing = "builder-test-no-such-package-7f3a1c"
    report = await shell.install_packages(["react@18.3.1", missing], ctx=ctx)
    head, *lines = report.splitlines()
    assert head == (
        f"`npm install --save --no-audit --no-fund react@18.3.1 {missing}` failed "
        f"(exit code 1): {missing} is not in the registry:"
    )
    assert lines[:2] == [
        "npm error code E404",
        f"npm error 404 Not Found - GET https://registry.npmjs.org/{missing}",
    ]
    assert len(lines) <= 8 and not any("complete log" in line for line in lines)
