"""Looking around the project: list files, the project tree, search file contents."""

from __future__ import annotations

import re

import re2

from builder.errors import InvalidInput
from builder.sandbox.base import FileInfo
from builder.tools.context import ToolContext

__all__ = [
    "file_contents",
    "get_project_structure",
    "list_files",
    "render_tree",
    "search_files",
]

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # an invalid pattern is searched as text, not logged

MAX_MATCHES = 100
"""Most matching lines ``search_files`` reports."""
MAX_SEARCHED_BYTES = 1024 * 1024
"""Files larger than this are not searched (bundles, images, data)."""
MAX_MATCH_CHARS = 200


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")  # pragma: no cover


def render_tree(entries: list[FileInfo], root: str = ".") -> str:
    """Draw workspace entries (sorted by path) as an indented tree with file sizes."""
    base = "" if root in (".", "") else root.rstrip("/") + "/"
    lines = [root if root not in ("", ".") else "."]
    for entry in entries:
        relative = entry.path[len(base) :] if entry.path.startswith(base) else entry.path
        depth = relative.count("/")
        name = relative.rsplit("/", 1)[-1]
        label = f"{name}/" if entry.is_dir else _label(name, entry)
        lines.append(f"{'  ' * (depth + 1)}{label}")
    return "\n".join(lines)


async def list_files(path: str = ".", recursive: bool = False, *, ctx: ToolContext) -> str:
    """List the files and directories in a directory of the project.

    Args:
        path: Directory relative to the project root (`.` is the root).
        recursive: Also list everything below subdirectories.
    """
    entries = await ctx.sandbox.list_files(path, recursive=recursive)
    if not entries:
        return f"{path} is empty."
    files = sum(entry.is_file for entry in entries)
    lines = [f"{entry.path}/" if entry.is_dir else _label(entry.path, entry) for entry in entries]
    dirs = sum(entry.is_dir for entry in entries)
    summary = f"{_count(files, 'file')}, {_count(dirs, 'directory')} under {path}:"
    return summary + "\n" + "\n".join(lines)


def _label(name: str, entry: FileInfo) -> str:
    if entry.special is not None:
        return f"{name} ({entry.special}: not read, not saved)"
    return f"{name} ({_size(entry.size)})"


def _count(n: int, noun: str) -> str:
    if n == 1:
        return f"1 {noun}"
    if noun.endswith("y"):
        return f"{n} {noun[:-1]}ies"
    return f"{n} {noun}{'es' if noun.endswith('ch') else 's'}"


async def get_project_structure(include_contents: bool = False, *, ctx: ToolContext) -> str:
    """Show the whole project as a tree, optionally with the contents of its text files.

    Args:
        include_contents: Also show file contents, smallest files first, until the
            output budget is used up; the files left out are named.
    """
    entries = await ctx.sandbox.list_files(".", recursive=True)
    files = [entry for entry in entries if entry.is_file]
    total = sum(entry.size for entry in files)
    head = f"{_count(len(files), 'file')}, {_size(total)}\n{render_tree(entries)}"
    if not include_contents:
        return head
    budget = ctx.settings.tool_output_chars - len(head) - 1
    return head + "\n" + await file_contents(ctx, files, budget=budget)


async def file_contents(ctx: ToolContext, files: list[FileInfo], *, budget: int) -> str:
    """The contents of text files, smallest first, within ``budget`` characters.

    Files that do not fit, and binary files, are named at the end instead.
    """
    shown: list[tuple[str, str]] = []
    left_out: list[str] = []
    used = 0
    for entry in sorted(files, key=lambda item: (item.size, item.path)):
        data = await ctx.sandbox.read_file(entry.path) if entry.size <= budget else None
        text = _text(data)
        block = f"\n--- {entry.path} ---\n{text}" if text is not None else ""
        if text is None or used + len(block) > budget:
            left_out.append(entry.path)
            continue
        shown.append((entry.path, block))
        used += len(block)
    # The note naming what was left out must fit too: give up the largest blocks for it.
    while shown and used + len(_left_out_note(left_out)) > budget:
        path, block = shown.pop()
        left_out.insert(0, path)
        used -= len(block)
    return "".join(block for _, block in shown) + _left_out_note(left_out)


def _left_out_note(paths: list[str]) -> str:
    return f"\n\n(contents left out: {', '.join(paths)})" if paths else ""


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


async def search_files(pattern: str, path: str = ".", *, ctx: ToolContext) -> str:
    """Search the text files of the project for a regular expression or plain text.

    Args:
        pattern: A regular expression (RE2 syntax, as in Python without
            backreferences and lookarounds); if it is not a valid one, it is searched
            for as plain text.
        path: Directory (or file) relative to the project root to search in.
    """
    if not pattern:
        raise InvalidInput("pattern is empty")
    # RE2 matches in time linear in the input: no pattern can stall the server the way
    # a backtracking engine does on "(a+)+$" against a line of "a"s.
    try:
        regex = re2.compile(pattern, _RE2_OPTIONS)
        kind = "regex"
    except re2.error:
        regex = re2.compile(re.escape(pattern), _RE2_OPTIONS)
        kind = "text"
    info = await ctx.sandbox.stat(path)
    if info is None:
        raise InvalidInput(f"{path} does not exist")
    candidates = (
        [entry for entry in await ctx.sandbox.list_files(path, recursive=True) if entry.is_file]
        if info.is_dir
        else [info]
        if info.is_file
        else []
    )
    matches: list[str] = []
    more = 0
    for entry in candidates:
        if entry.size > MAX_SEARCHED_BYTES:
            continue
        text = _text(await ctx.sandbox.read_file(entry.path))
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if regex.search(line):
                if len(matches) < MAX_MATCHES:
                    matches.append(f"{entry.path}:{number}: {line.strip()[:MAX_MATCH_CHARS]}")
                else:
                    more += 1
    if not matches:
        return f"No match for {kind} {pattern!r} under {path}."
    extra = f"\n(… {more} more matches; narrow the pattern or the path)" if more else ""
    return (
        f"{_count(len(matches) + more, 'match')} for {kind} {pattern!r}:\n"
        + "\n".join(matches)
        + extra
    )
