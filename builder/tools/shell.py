"""Running commands in the sandbox: ``run_command`` and ``install_packages``."""

from __future__ import annotations

import json
import re
import shlex
from typing import Annotated

from pydantic import Field

from builder.errors import InvalidInput, NotFound
from builder.sandbox.base import CachesInstalls, CommandResult
from builder.settings import OperationKind
from builder.timeouts import with_timeout
from builder.tools.context import ToolContext
from builder.tools.python_packages import install_python, python_manager

__all__ = [
    "LOCK_FILES",
    "NPM_PACKAGE",
    "failure_report",
    "format_result",
    "install_packages",
    "package_manager",
    "run_command",
    "run_in_sandbox",
]

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


async def run_in_sandbox(
    ctx: ToolContext, command: str, *, cwd: str, seconds: float, operation: OperationKind
) -> CommandResult:
    result = await with_timeout(
        ctx.sandbox.exec(command, cwd=cwd, timeout=seconds),
        operation,
        seconds=seconds + GRACE_SECONDS,
    )
    _record(ctx, result)
    return result


def _record(ctx: ToolContext, result: CommandResult) -> None:
    # A command may change any file; the graph rescans instead of trusting the tracked set.
    ctx.effects.workspace_changed()
    if not result.ok:
        output = (result.stderr.strip() or result.stdout.strip()).splitlines()
        last = f": {output[-1]}" if output else ""
        outcome = "timed out" if result.timed_out else f"exited with code {result.exit_code}"
        ctx.effects.failed = True
        ctx.effects.error(f"`{result.command}` {outcome}{last}")


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
    result = await run_in_sandbox(ctx, command, cwd=cwd, seconds=seconds, operation="sandbox")
    return format_result(result)


LOCK_FILES = (
    ("pnpm-lock.yaml", "pnpm"),
    ("bun.lock", "bun"),
    ("bun.lockb", "bun"),
    ("yarn.lock", "yarn"),
    ("package-lock.json", "npm"),
)
"""Lock file → the package manager that wrote it, in the order they are looked for."""

_FROM_LOCK = {
    "npm": ["npm", "ci"],
    "pnpm": ["pnpm", "install", "--frozen-lockfile"],
    "bun": ["bun", "install", "--frozen-lockfile"],
    "yarn": ["yarn", "install", "--frozen-lockfile"],
}
_ADD = {"pnpm": ["pnpm", "add"], "bun": ["bun", "add"], "yarn": ["yarn", "add"]}
_DEV_FLAG = {"pnpm": "--save-dev", "bun": "--dev", "yarn": "--dev"}
_NPM_QUIET = ["--no-audit", "--no-fund"]
_ERROR_LINES = 8


async def package_manager(ctx: ToolContext) -> str:
    """The package manager the project's lock file names; npm when there is none."""
    for name, manager in LOCK_FILES:
        if await ctx.sandbox.stat(name) is not None:
            return manager
    return "npm"


async def install_packages(
    packages: list[str] | None = None, dev: bool = False, *, ctx: ToolContext
) -> str:
    """Install packages with the project's package manager (found from its lock file).

    With no packages, installs everything the lock file lists (run it first in a new
    project from a starter); when another project on the host installed the same lock
    file, its installed tree is reused and the project's own install scripts still run.
    With packages, adds them and saves them in package.json. A Python project (no
    package.json; requirements.txt, pyproject.toml or uv.lock) installs with pip into
    .venv (or uv), saving added packages in requirements.txt.

    Args:
        packages: Package names, optionally scoped or with a version, e.g.
            `["react", "@types/node@^20"]` (Python: `["httpx>=0.27"]`); leave out to
            install from the lock file.
        dev: Save them as devDependencies (Python: in requirements-dev.txt).
    """
    packages = list(packages or [])
    if len(packages) > MAX_PACKAGES:
        raise InvalidInput(f"{len(packages)} packages at once; the limit is {MAX_PACKAGES}")
    if await ctx.sandbox.stat("package.json") is None:
        python = await python_manager(ctx)
        if python is not None:
            seconds = ctx.settings.timeout_install
            _, report = await install_python(ctx, python, packages, dev=dev, seconds=seconds)
            return report
        raise InvalidInput(
            "there is no package.json (nor requirements.txt, pyproject.toml or uv.lock): "
            "write one (or start the project from a starter) before installing packages"
        )
    bad = [name for name in packages if not NPM_PACKAGE.fullmatch(name)]
    if bad:
        raise InvalidInput(
            f"not valid npm package names: {', '.join(repr(name) for name in bad)}; use "
            "names like react, @scope/name or name@^1.2 without spaces or shell characters"
        )
    manager = await package_manager(ctx)
    if packages and manager == "npm":
        argv = ["npm", "install", "--save-dev" if dev else "--save", *_NPM_QUIET, *packages]
    elif packages:
        argv = [*_ADD[manager], *([_DEV_FLAG[manager]] if dev else []), *packages]
    elif manager == "npm":
        lock = await ctx.sandbox.stat("package-lock.json") is not None
        if lock and isinstance(ctx.sandbox, CachesInstalls):
            cached = await _install_through_cache(ctx, ctx.sandbox, manager)
            if cached is not None:
                return cached
        argv = ["npm", "ci" if lock else "install", *_NPM_QUIET]
    else:
        argv = list(_FROM_LOCK[manager])
    seconds = ctx.settings.timeout_install
    result = await run_in_sandbox(
        ctx, shlex.join(argv), cwd=".", seconds=seconds, operation="install"
    )
    return await _install_report(ctx, result, manager, packages)


_ROOT_SCRIPTS = (
    "preinstall",
    "install",
    "postinstall",
    "prepublish",
    "preprepare",
    "prepare",
    "postprepare",
)
"""The root package's own scripts ``npm ci`` runs, in its order."""


async def _install_through_cache(
    ctx: ToolContext, sandbox: CachesInstalls, manager: str
) -> str | None:
    """Install from the lock file with the sandbox's cache of installed trees, then run
    the root package's own install scripts in the project; None when it cannot serve."""
    seconds = ctx.settings.timeout_install
    # The clean install's own timeout, and time to put the tree in place.
    done = await with_timeout(
        sandbox.install_from_lock(manager, timeout=seconds),
        "install",
        seconds=2 * seconds + GRACE_SECONDS,
    )
    if done is None:
        return None
    _record(ctx, done.result)
    if not done.result.ok:
        return await _install_report(ctx, done.result, manager, [])
    note = " from the host's cache of installed trees" if done.from_cache else ""
    try:
        manifest = json.loads(await ctx.sandbox.read_file("package.json"))
        scripts = manifest.get("scripts") or {}
    except (NotFound, ValueError, AttributeError):
        scripts = {}
    names = [name for name in _ROOT_SCRIPTS if isinstance(scripts, dict) and name in scripts]
    if names:
        command = " && ".join(f"npm run {name}" for name in names)
        ran = await run_in_sandbox(ctx, command, cwd=".", seconds=seconds, operation="install")
        if not ran.ok:
            return failure_report(ran, f"{ran.stdout}\n{ran.stderr}")
        note += f", then ran its {', '.join(names)} script{'s' if len(names) > 1 else ''}"
    return await _install_report(ctx, done.result, manager, [], note=note)


async def _install_report(
    ctx: ToolContext, result: CommandResult, manager: str, packages: list[str], note: str = ""
) -> str:
    if result.timed_out:
        return f"`{result.command}` was killed after {result.duration_s:.0f} s (timeout)."
    output = f"{result.stdout}\n{result.stderr}"
    if not result.ok:
        return failure_report(result, output)
    added = re.search(r"(added|changed|removed|up to date)[^\n]*", output)
    summary = added.group(0).strip() if added else "done"
    versions = await _installed_versions(ctx, packages)
    what = f" {versions};" if versions else ""
    return f"Installed with {manager}:{what} {summary}{note} ({result.duration_s:.1f} s)."


_PROBLEM = re.compile(r"\s*(npm (error|ERR!)|ERR_PNPM|error:?\s)", re.IGNORECASE)
_NOISE = re.compile(r"(npm (error|ERR!)( \w+)?\s*$)|A complete log of this run", re.IGNORECASE)
"""Lines that say nothing: a bare ``npm error 404``, and the debug log's path, which is
in the command's private home and gone when it exits."""
_CULPRITS = (
    # npm: "404 Not Found - GET https://registry.npmjs.org/@scope%2fname - Not found"
    (
        re.compile(
            r"404 Not Found - GET https?://\S+?/((?:@[^/\s]+(?:/|%2[fF]))?[^/\s]+?)(?:\s|$)"
        ),
        "is not in the registry",
    ),
    # pnpm: "ERR_PNPM_FETCH_404  GET https://registry.npmjs.org/name: Not Found - 404"
    (
        re.compile(r"GET https?://\S+?/((?:@[^/\s]+(?:/|%2[fF]))?[^/\s:]+): Not Found"),
        "is not in the registry",
    ),
    # npm and pnpm: "No matching version found for left-pad@99.99.99."
    (
        re.compile(r"No matching version found for (\S+?)\.?(?:\s|$)"),
        "matches no published version",
    ),
    # pip: "ERROR: No matching distribution found for name"
    (re.compile(r"No matching distribution found for (\S+)"), "is not in the package index"),
)


def failure_report(result: CommandResult, output: str) -> str:
    """The failing package (when the output names one) and the first lines of the error."""
    problems = [
        line.strip()
        for line in output.splitlines()
        if _PROBLEM.match(line) and not _NOISE.search(line.strip())
    ]
    shown = "\n".join((problems or output.strip().splitlines())[:_ERROR_LINES])
    head = f"`{result.command}` failed (exit code {result.exit_code})"
    for pattern, reason in _CULPRITS:
        found = pattern.search(output)
        if found:
            name = found.group(1).replace("%2f", "/").replace("%2F", "/")
            head += f": {name} {reason}"
            break
    return f"{head}:\n{shown}"


async def _installed_versions(ctx: ToolContext, packages: list[str]) -> str:
    if not packages:
        return ""
    try:
        manifest = json.loads(await ctx.sandbox.read_file("package.json"))
    except (NotFound, ValueError):
        return ""
    listed = {**manifest.get("dependencies", {}), **manifest.get("devDependencies", {})}
    names = [re.sub(r"(?<=.)@[^@/]*$", "", name) for name in packages]
    return ", ".join(f"{name}@{listed[name]}" for name in names if name in listed)
