"""Installing a Python project's packages: uv from ``uv.lock``, else pip into ``.venv``.

A project is a Python one when it has no ``package.json`` and has ``uv.lock``,
``requirements.txt`` or ``pyproject.toml``. pip installs into the project's own
``.venv`` (made with the sandbox's ``python3 -m venv`` when missing), which listings and
snapshots leave out like ``node_modules``; packages named by the model are pinned to the
version installed in ``requirements.txt`` (``requirements-dev.txt`` for ``dev``). uv
(``uv sync --frozen``, ``uv add``) is used for a ``uv.lock`` when the host has it.
"""

from __future__ import annotations

import re
import shlex

from builder.errors import InvalidInput, NotFound
from builder.sandbox.base import CommandResult
from builder.tools.context import ToolContext

__all__ = ["PYTHON_PACKAGE", "install_python", "python_manager"]

PYTHON_PACKAGE = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"  # the name (PEP 508)
    r"(?:\[[A-Za-z0-9._-]+(?:,[A-Za-z0-9._-]+)*\])?"  # extras
    r"(?:(?:==|>=|<=|~=|!=|>|<)[A-Za-z0-9.*+!]+(?:,(?:==|>=|<=|~=|!=|>|<)[A-Za-z0-9.*+!]+)*)?"
)
"""A requirement the tool accepts: a name, extras and version bounds; no URLs or paths."""

_PROJECT_FILES = (("uv.lock", "uv"), ("requirements.txt", "pip"), ("pyproject.toml", "pip"))
_VENV_PYTHON = ".venv/bin/python"
_PIP = [_VENV_PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
_INSTALLED = re.compile(r"Successfully installed (.+)")


async def python_manager(ctx: ToolContext) -> str | None:
    """``uv`` or ``pip`` for a Python project's files; None when it is not one."""
    for name, manager in _PROJECT_FILES:
        if await ctx.sandbox.stat(name) is not None:
            return manager
    return None


async def install_python(
    ctx: ToolContext, manager: str, packages: list[str], *, dev: bool, seconds: float
) -> tuple[CommandResult, str]:
    """Run the install; returns its result and the report for the model."""
    from builder.tools.shell import failure_report, run_in_sandbox

    bad = [name for name in packages if not PYTHON_PACKAGE.fullmatch(name)]
    if bad:
        raise InvalidInput(
            f"not valid Python requirements: {', '.join(repr(name) for name in bad)}; use "
            "names like requests, rich[jupyter] or httpx>=0.27 without spaces or URLs"
        )
    if manager == "uv":
        found = await run_in_sandbox(ctx, "command -v uv", cwd=".", seconds=10, operation="sandbox")
        if not found.ok:
            manager = "pip"  # the host has no uv: pip installs what the lock's project names
    if manager == "uv":
        argv = ["uv", "add", *(["--dev"] if dev else []), *packages] if packages else [
            "uv", "sync", "--frozen"
        ]  # fmt: skip
        command = shlex.join(argv)
    else:
        if packages:
            target = list(packages)
        elif await ctx.sandbox.stat("requirements.txt") is not None:
            target = ["-r", "requirements.txt"]
        else:
            target = ["."]  # pyproject.toml: the project and its dependencies
        command = (
            f"{{ test -x {_VENV_PYTHON} || python3 -m venv .venv; }} && {shlex.join(_PIP + target)}"
        )
    result = await run_in_sandbox(ctx, command, cwd=".", seconds=seconds, operation="install")
    if result.timed_out:
        return result, f"`{result.command}` was killed after {result.duration_s:.0f} s (timeout)."
    output = f"{result.stdout}\n{result.stderr}"
    if not result.ok:
        return result, failure_report(result, output)
    installed = _installed(output)
    if packages and manager == "pip":
        await _pin(ctx, "requirements-dev.txt" if dev else "requirements.txt", installed, packages)
    if installed:
        shown = ", ".join(f"{name} {version}" for name, version in installed)
        summary = f"added {len(installed)} package{'s' if len(installed) != 1 else ''}: {shown}"
    else:
        summary = "up to date" if manager == "pip" else "synced"
    where = " into .venv" if manager == "pip" else ""
    return result, f"Installed with {manager}{where}: {summary} ({result.duration_s:.1f} s)."


def _installed(output: str) -> list[tuple[str, str]]:
    """pip's "Successfully installed a-1.0 b_c-2.0" as (name, version) pairs."""
    found = _INSTALLED.search(output)
    if not found:
        return []
    pairs = []
    for item in found.group(1).split():
        name, _, version = item.rpartition("-")
        if name:
            pairs.append((name, version))
    return pairs


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


async def _pin(
    ctx: ToolContext, path: str, installed: list[tuple[str, str]], packages: list[str]
) -> None:
    """Add the named packages to the requirements file, pinned to what was installed
    (a bound the model gave is kept as given)."""
    try:
        text = (await ctx.sandbox.read_file(path)).decode()
    except NotFound:
        text = ""
    listed = {
        _normal(re.split(r"[\[<>=!~; ]", line.strip(), maxsplit=1)[0])
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "-"))
    }
    versions = {_normal(name): version for name, version in installed}
    lines = []
    for requirement in packages:
        name = re.split(r"[\[<>=!~]", requirement, maxsplit=1)[0]
        if _normal(name) in listed:
            continue
        bounded = requirement != name and not requirement.startswith(f"{name}[")
        version = versions.get(_normal(name))
        lines.append(requirement if bounded or version is None else f"{requirement}=={version}")
    if lines:
        joined = text if not text or text.endswith("\n") else f"{text}\n"
        await ctx.sandbox.write_file(path, (joined + "\n".join(lines) + "\n").encode())
        ctx.effects.workspace_changed()
