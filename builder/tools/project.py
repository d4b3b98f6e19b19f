"""``analyze_project_state``: one look at files, plan, dev server and recent errors."""

from __future__ import annotations

from builder.tools.context import ToolContext
from builder.tools.devserver import DEV_SERVER
from builder.tools.listing import file_contents, render_tree
from builder.tools.plan import render_plan

__all__ = ["analyze_project_state"]


async def analyze_project_state(include_file_contents: bool = False, *, ctx: ToolContext) -> str:
    """Summarize the project: its files and sizes, plan progress, dev server and recent errors.

    Args:
        include_file_contents: Also show the contents of text files, smallest first,
            as far as the output budget allows.
    """
    entries = await ctx.sandbox.list_files(".", recursive=True)
    files = [entry for entry in entries if entry.is_file]
    total = sum(entry.size for entry in files)
    sections = [
        f"Project {ctx.project_id}: {len(files)} files, {total:,} bytes",
        render_tree(entries) if entries else "(no files yet)",
    ]
    plan = ctx.effects.plan
    sections.append(render_plan(plan) if plan is not None else "Plan: none yet.")
    info = await ctx.sandbox.process_info(DEV_SERVER, log_lines=10)
    if info is None:
        sections.append("Dev server: not started.")
    elif info.running:
        sections.append(f"Dev server: running at {info.preview_url} ({info.command})")
    else:
        tail = "\n".join(info.logs[-5:])
        sections.append(f"Dev server: stopped with exit code {info.exit_code}\n{tail}".rstrip())
    errors = list(ctx.effects.errors)
    sections.append(
        "Recent errors:\n" + "\n".join(f"- {e}" for e in errors[-10:])
        if errors
        else "Recent errors: none."
    )
    report = "\n\n".join(sections)
    if include_file_contents:
        report += "\n\nContents:"
        budget = ctx.settings.tool_output_chars - len(report)
        report += await file_contents(ctx, files, budget=budget)
    return report
