"""The plugin module named by the ``builder`` entry point: registers ``check_site``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from builder import ToolContext, hookimpl
from builder_site_checker.checker import check_pages, is_page

MAX_REPORTED = 100
"""Problems listed in one report; the rest are counted."""


@hookimpl
def register_tools(register: Callable[..., Any]) -> None:
    """Register ``check_site``."""
    register(check_site)


async def check_site(path: str = ".", *, ctx: ToolContext) -> str:
    """Check the HTML pages under a directory for broken links and accessibility problems.

    Reports internal links and asset references to files that do not exist (or
    to #fragments no element has), images without alt text, pages without a
    <title>, unclosed or mismatched tags and duplicate ids. Works offline; external
    URLs are not fetched.

    Args:
        path: The site's root directory relative to the project root; links starting
            with `/` are resolved from here.
    """
    info = await ctx.sandbox.stat(path)
    if info is None:
        return f"{path} does not exist."
    if info.is_dir:
        entries = await ctx.sandbox.list_files(path, recursive=True)
        root = path
    else:
        entries = [info]
        root = path.rsplit("/", 1)[0] if "/" in path else "."
    files = {entry.path for entry in entries if not entry.is_dir}
    if info.is_dir and root not in (".", ""):
        prefix = root.strip("/") + "/"
        files = {name[len(prefix) :] for name in files if name.startswith(prefix)}
    pages: dict[str, str] = {}
    for name in sorted(files):
        if is_page(name):
            full = name if root in (".", "") else f"{root.strip('/')}/{name}"
            data = await ctx.sandbox.read_file(full)
            pages[name] = data.decode("utf-8", errors="replace")
    if not pages:
        return f"No HTML pages under {path}."
    problems = check_pages(pages, files)
    head = f"Checked {len(pages)} page{'s' if len(pages) != 1 else ''} under {path}: "
    if not problems:
        return head + "no problems found."
    lines = [str(problem) for problem in problems[:MAX_REPORTED]]
    if len(problems) > MAX_REPORTED:
        lines.append(f"… and {len(problems) - MAX_REPORTED} more")
    return head + f"{len(problems)} problem{'s' if len(problems) != 1 else ''}\n" + "\n".join(lines)
