"""The build gate: ``check_build`` runs the project's type check and build and reports
the errors with their file and line, not the whole log."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

from builder.errors import InvalidInput, NotFound
from builder.tools.context import ToolContext
from builder.tools.shell import run_in_sandbox

__all__ = ["BuildError", "BuildOutcome", "check_build", "parse_errors", "run_build_check"]

MAX_SHOWN_ERRORS = 20
NOT_INSTALLED = (
    "the dependencies are not installed: call install_packages with no packages "
    "to install them from the lock file, then check_build again"
)

# tsc:    src/App.tsx(3,7): error TS2322: Type 'number' is not assignable to type 'string'.
_TSC = re.compile(r"^(?P<file>[^\s(][^(]*)\((?P<line>\d+),(?P<col>\d+)\): error (?P<msg>.+)$")
# astro check / eslint-style:  src/pages/index.astro:3:7 - error ts(2322): ...
_COLON = re.compile(
    r"^(?P<file>[^\s:]+\.\w+):(?P<line>\d+):(?P<col>\d+)\s*-?\s*error\s*(?P<msg>.+)$"
)
# vite/rollup:  file: /workspace/src/main.tsx:4:2  (the message is on the lines before)
_VITE_FILE = re.compile(
    r"file: (?:.*?/)?(?P<file>src/[^\s:]+|[^\s/:]+\.\w+):(?P<line>\d+):(?P<col>\d+)"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class BuildError:
    """One problem the build reported."""

    __slots__ = ("column", "file", "line", "message")

    def __init__(self, file: str, line: int, column: int, message: str) -> None:
        self.file, self.line, self.column, self.message = file, line, column, message

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


def parse_errors(output: str) -> list[BuildError]:
    """The errors with a file and line in a type checker's or bundler's output."""
    errors: list[BuildError] = []
    lines = [_ANSI.sub("", line).rstrip() for line in output.splitlines()]
    for index, line in enumerate(lines):
        match = _TSC.match(line.strip()) or _COLON.match(line.strip())
        if match:
            errors.append(
                BuildError(
                    match["file"].strip(), int(match["line"]), int(match["col"]), match["msg"]
                )
            )
            continue
        vite = _VITE_FILE.search(line)
        if vite:
            before = [text.strip() for text in lines[max(0, index - 3) : index] if text.strip()]
            message = next((text for text in reversed(before) if "error" in text.lower()), "")
            errors.append(
                BuildError(vite["file"], int(vite["line"]), int(vite["col"]), message or line)
            )
    return errors


@dataclass(frozen=True, slots=True)
class BuildOutcome:
    """What checking the build found."""

    passed: bool | None
    """True when it passes, False when it fails, None when there is nothing to build."""
    text: str
    """The report the model reads: the errors with file and line, or why it passed."""


async def run_build_check(ctx: ToolContext) -> BuildOutcome:
    """Run package.json's ``typecheck`` and ``build`` scripts and report what they found.

    Raises:
        InvalidInput: package.json is not JSON, or the dependencies are not installed.
    """
    try:
        manifest = json.loads(await ctx.sandbox.read_file("package.json"))
    except NotFound:
        return BuildOutcome(
            None, "Nothing to build: a static site (no package.json) is served as it is."
        )
    except ValueError as exc:
        raise InvalidInput(f"package.json is not valid JSON: {exc}") from None
    scripts = manifest.get("scripts") if isinstance(manifest, dict) else None
    if not isinstance(scripts, dict) or "build" not in scripts:
        return BuildOutcome(None, "Nothing to build: package.json has no `build` script.")
    if await ctx.sandbox.stat("node_modules") is None:
        raise InvalidInput(NOT_INSTALLED)
    steps = [name for name in ("typecheck", "build") if name in scripts]
    build_script = str(scripts.get("build", ""))
    if "typecheck" in steps and (
        "tsc" in build_script or str(scripts["typecheck"]) in build_script
    ):
        steps = ["build"]  # the build runs the type check itself
    seconds = ctx.settings.timeout_install
    for name in steps:
        command = shlex.join(["npm", "run", "--silent", name])
        result = await run_in_sandbox(ctx, command, cwd=".", seconds=seconds, operation="install")
        if result.ok:
            continue
        output = f"{result.stdout}\n{result.stderr}"
        errors = parse_errors(output)
        if result.timed_out:
            return BuildOutcome(
                False, f"`npm run {name}` was killed after {result.duration_s:.0f} s (timeout)."
            )
        if not errors:
            tail = "\n".join(_ANSI.sub("", output).strip().splitlines()[-15:])
            return BuildOutcome(
                False, f"`npm run {name}` failed (exit code {result.exit_code}):\n{tail}"
            )
        shown = "\n".join(f"- {error}" for error in errors[:MAX_SHOWN_ERRORS])
        more = len(errors) - MAX_SHOWN_ERRORS
        extra = f"\n(… and {more} more)" if more > 0 else ""
        return BuildOutcome(
            False,
            f"The build fails: `npm run {name}` reported {len(errors)} "
            f"error{'s' if len(errors) != 1 else ''}:\n{shown}{extra}",
        )
    return BuildOutcome(True, f"The build passes ({' and '.join(f'npm run {s}' for s in steps)}).")


async def check_build(*, ctx: ToolContext) -> str:
    """Type-check and build the project the way it ships; report errors with file and line.

    Runs package.json's `typecheck` script when there is one, then its `build` script.
    A static site without package.json has nothing to build. Call it after changing
    code, and fix what it reports before saying the work is done.
    """
    return (await run_build_check(ctx)).text
