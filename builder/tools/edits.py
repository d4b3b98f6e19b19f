"""``edit_file``: replace one exact occurrence of a text, safely under concurrency.

The edit holds the file's lock across read-modify-write, so editors in every task
and process take turns, and it writes only if the file still has the hash it read
(compare-and-swap): a change made behind its back — by a user, a dev server, a
command — is reported as :class:`~builder.errors.ConcurrentModification`, never
overwritten.
"""

from __future__ import annotations

import difflib

from builder.errors import InvalidInput, SearchTextNotFound, SearchTextNotUnique
from builder.tools.context import ToolContext
from builder.tools.workspace_files import (
    file_lock_key,
    normalize_path,
    sha256_hex,
    within_limits,
)

__all__ = ["closest_lines", "edit_file"]

MAX_SHOWN_LINES = 12
"""Lines of context shown when the search text is not found."""
MAX_LISTED_MATCHES = 20


def closest_lines(text: str, search: str) -> tuple[int, list[str]] | None:
    """Where ``text`` comes closest to ``search``: the first line number and the lines.

    The most distinctive (longest) line of ``search`` is located in ``text`` with
    difflib; the window around it has as many lines as ``search``. None when nothing
    is even remotely similar.
    """
    lines = text.splitlines()
    wanted = search.splitlines() or [search]
    anchor_index, anchor = max(enumerate(wanted), key=lambda item: len(item[1].strip()))
    stripped = [line.strip() for line in lines]
    matches = difflib.get_close_matches(anchor.strip(), stripped, n=1, cutoff=0.5)
    if not matches:
        return None
    found = stripped.index(matches[0])
    start = max(found - anchor_index, 0)
    window = lines[start : start + min(len(wanted), MAX_SHOWN_LINES)]
    return start + 1, window


def _not_found(path: str, text: str, search: str) -> SearchTextNotFound:
    closest = closest_lines(text, search)
    if closest is None:
        hint = "nothing similar is in the file"
    else:
        first, window = closest
        shown = "\n".join(f"{first + i:>6}\t{line}" for i, line in enumerate(window))
        last = first + len(window) - 1
        where = f"line {first}" if last == first else f"lines {first}-{last}"
        hint = f"the closest text is at {where}:\n{shown}"
    return SearchTextNotFound(
        f"the search text does not occur in {path}; {hint}\n"
        "Copy the text exactly (whitespace and indentation included), or read the file "
        "again.",
        path=path,
    )


def _occurrences(text: str, search: str) -> list[int]:
    found: list[int] = []
    start = text.find(search)
    while start != -1:
        found.append(start)
        start = text.find(search, start + len(search))
    return found


async def edit_file(path: str, search: str, replace: str, *, ctx: ToolContext) -> str:
    """Replace one exact, unique occurrence of a text in a file with new text.

    Args:
        path: Path relative to the project root.
        search: The exact text to replace, whitespace included; it must occur exactly
            once, so include enough surrounding lines to make it unique.
        replace: The new text, inserted literally.
    """
    path = normalize_path(path)
    if not search:
        raise InvalidInput("search is empty; give the exact text to replace")
    async with ctx.locks.hold(file_lock_key(ctx, path)):
        old = await ctx.sandbox.read_file(path)
        try:
            text = old.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{path} is a binary file; it cannot be edited as text") from None
        found = _occurrences(text, search)
        if not found:
            raise _not_found(path, text, search)
        if len(found) > 1:
            numbers = [text.count("\n", 0, at) + 1 for at in found]
            listed = ", ".join(str(n) for n in numbers[:MAX_LISTED_MATCHES])
            more = ", …" if len(numbers) > MAX_LISTED_MATCHES else ""
            raise SearchTextNotUnique(
                f"the search text occurs {len(found)} times in {path} (at lines "
                f"{listed}{more}); include more surrounding text so it matches once",
                path=path,
                count=len(found),
                lines=numbers,
            )
        at = found[0]
        # Slicing, never re.sub: "$1", "\1" or "\g<0>" in the replacement stay literal.
        new = (text[:at] + replace + text[at + len(search) :]).encode("utf-8")
        async with within_limits(ctx, {path: new}, replaced={path: len(old)}):
            await ctx.sandbox.write_file(path, new, expected_sha256=sha256_hex(old))
    ctx.effects.file_written(path, sha256_hex(new), new)
    line = text.count("\n", 0, at) + 1
    removed, added = search.count("\n") + 1, replace.count("\n") + 1
    return (
        f"Edited {path} at line {line}: {removed} line{'s' if removed != 1 else ''} "
        f"replaced by {added} ({len(old):,} → {len(new):,} bytes)."
    )
