"""``ctx.files``: plugin tools write with the same guards as the built-in tools."""

from __future__ import annotations

import pytest

from builder.errors import ConcurrentModification, FileTooLarge, QuotaExceeded
from builder.tools.context import ToolContext
from builder.tools.tool import Tool
from builder.tools.workspace_files import sha256_hex


async def add_robots_txt(disallow: list[str], *, ctx: ToolContext) -> str:
    """Write robots.txt, disallowing the given paths for every crawler.

    Args:
        disallow: Paths crawlers should skip.
    """
    lines = ["User-agent: *", *(f"Disallow: {path}" for path in disallow)]
    written = await ctx.files.write("robots.txt", "\n".join(lines) + "\n")
    return f"{'Created' if written.created else 'Updated'} robots.txt"


async def test_a_plugin_tool_write_is_recorded_for_the_next_version(ctx: ToolContext) -> None:
    tool = Tool.from_function(add_robots_txt, plugin="example")
    assert await tool.run(ctx, {"disallow": ["/drafts/"]}) == "Created robots.txt"
    assert await tool.run(ctx, {"disallow": ["/tmp/"]}) == "Updated robots.txt"
    content = b"User-agent: *\nDisallow: /tmp/\n"
    assert await ctx.files.read("./robots.txt") == content
    assert ctx.effects.take().files == {"robots.txt": sha256_hex(content)}


async def test_limits_apply_and_nothing_is_written(ctx: ToolContext) -> None:
    ctx.settings = ctx.settings.model_copy(
        update={"max_write_bytes": 100, "project_quota_bytes": 150}
    )
    with pytest.raises(FileTooLarge):
        await ctx.files.write("big.txt", "x" * 101)
    await ctx.files.write("a.txt", "x" * 100)
    with pytest.raises(QuotaExceeded):
        await ctx.files.write("b.txt", "y" * 100)
    assert await ctx.sandbox.stat("big.txt") is None
    assert await ctx.sandbox.stat("b.txt") is None


async def test_compare_and_swap_reports_a_change_made_behind_the_tools_back(
    ctx: ToolContext,
) -> None:
    first = await ctx.files.write("index.html", "<h1>One</h1>")
    await ctx.sandbox.write_file("index.html", b"<h1>Changed by the user</h1>")
    with pytest.raises(ConcurrentModification):
        await ctx.files.write("index.html", "<h1>Two</h1>", expected_sha256=first.sha256)
    assert await ctx.files.read("index.html") == b"<h1>Changed by the user</h1>"
    with pytest.raises(ConcurrentModification):
        await ctx.files.write("index.html", "new", expected_sha256="")
