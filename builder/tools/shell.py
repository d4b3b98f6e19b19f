"""Running commands in the sandbox: ``run_command`` and ``install_packages``."""

from __future__ import annotations

import re
import shlex
from typing import Annotated

from pydantic import Field

from builder.errors import InvalidInput
from builder.sandbox.base import CommandResult
from builder.settings import OperationKind
from builder.timeouts import with_timeout
from builder.tools.context import ToolContext

__all__ = ["NPM_PACKAGE", "format_result", "install_packages", "run_command"]

GRACE_SECONDS = 10.0
"""Time beyond a command's own timeout for the sandbox to kill it and report."""
MAX_PACKAGES = 50

NPM_PACKAGE = re.compile(
    r"(@[a-z0-9~-][a-z0-9._~-]*/)?[a-z0-9~-][a-z0-9._~-]{0,213}(@[A-Za-z0-9.^~*+_-]{1,64})?"
)
"""An npm package, optionally scoped and versioned (``@scope/name@^1.2``); nothing a
shell would interpret (no spaces, quotes, ``;``, ``|``, ``&``, ``$``, ``<``, ``>``)."""


def format_result(result: CommandResult) -> str:
    """A command result as text: status line, then stdout and stderr when present."""
    if result.timed_out:
        status = f"killed after {result.duration_s:.1f} s (timeout)"
    else:
        status = f"exit code {result.exit_code} ({result.duration_s:.1f} s)"
    parts = [f"$ {result.command}\n{status}"]
    if result.stdout.strip():
        parts.append(f"stdout:\n{result.stdout.rstrip()}")
    if result.stderr.strip():
        parts.append(f"stderr:\n{result.stderr.rstrip()}")
    if result.truncated_bytes:
        parts.append(f"({result.truncated_bytes:,} bytes of output were cut)")
    return "\n".join(parts)


async def _exec(
    ctx: ToolContext, command: str, *, cwd: str, seconds: float, operation: OperationKind
) -> CommandResult:
    result = await with_timeout(
        ctx.sandbox.exec(command, cwd=cwd, timeout=seconds),
        operation,
        seconds=seconds + GRACE_SECONDS,
    )
    # A command may change any file; the graph rescans instead of trusting the tracked set.
    ctx.effects.workspace_changed()
    if not result.ok:
        output = (result.stderr.strip() or result.stdout.strip()).splitlines()
        last = f": {output[-1]}" if output else ""
        outcome = "timed out" if result.timed_out else f"exited with code {result.exit_code}"
        ctx.effects.failed = True
        ctx.effects.error(f"`{command}` {outcome}{last}")
    return result


async def run_command(
    command: str,
    cwd: str = ".",
    timeout: Annotated[float | None, Field(gt=0)] = None,
    *,
    ctx: ToolContext,
) -> str:
    """Run a shell command in the project directory and return its exit code and output.

    Args:
        command: The shell command, e.g. `npm run build`.
        cwd: Directory relative to the project root to run it in.
        timeout: Seconds before the command is killed; defaults to the sandbox
            timeout and cannot exceed the install timeout.
    """
    if not command.strip():
        raise InvalidInput("command is empty")
    settings = ctx.settings
    seconds = min(timeout or settings.timeout_sandbox, settings.timeout_install)
    result = await _exec(ctx, command, cwd=cwd, seconds=seconds, operation="sandbox")
    return format_result(result)


async def install_packages(packages: list[str], dev: bool = False, *, ctx: ToolContext) -> str:
    """Install npm packages into the project (`npm install`) and save them in package.json.

    Args:
        packages: Package names, optionally scoped or with a version, e.g.
            `["react", "@types/node@^20"]`.
        dev: Save them as devDependencies.
    """
    if not packages:
        raise InvalidInput("packages is empty")
    if len(packages) > MAX_PACKAGES:
        raise InvalidInput(f"{len(packages)} packages at once; the limit is {MAX_PACKAGES}")
    bad = [name for name in packages if not NPM_PACKAGE.fullmatch(name)]
    if bad:
        raise InvalidInput(
            f"not valid npm package names: {', '.join(repr(name) for name in bad)}; use "
            "names like react, @scope/name or name@^1.2 without spaces or shell characters"
        )
    flag = "--save-dev" if dev else "--save"
    command = shlex.join(["npm", "install", flag, "--no-audit", "--no-fund", *packages])
    seconds = ctx.settings.timeout_install
    result = await _exec(ctx, command, cwd=".", seconds=seconds, operation="install")
    return format_result(result)
