"""``builder tools``: the tools the agent can use, and the plugin each comes from."""

from __future__ import annotations

import json

import typer

from builder.cli.app import app, console

tools_app = typer.Typer(help="Inspect the agent's tools.", no_args_is_help=True)
app.add_typer(tools_app, name="tools")


@tools_app.command("list")
def list_tools(
    as_json: bool = typer.Option(
        False, "--json", help="Print a JSON list with each tool's parameter schema."
    ),
) -> None:
    """List every tool with the plugin that registered it."""
    from rich.table import Table

    from builder.plugins import get_tool_registry

    registry = get_tool_registry()
    if as_json:
        data = [
            {
                "name": tool.name,
                "plugin": tool.plugin,
                "description": tool.description,
                "parameters": tool.parameters(),
            }
            for tool in registry
        ]
        typer.echo(json.dumps(data, indent=2))
        return
    table = Table(title=f"{len(registry)} tools")
    table.add_column("Tool", style="bold")
    table.add_column("Plugin")
    table.add_column("Description", overflow="fold")
    for tool in registry:
        table.add_row(tool.name, tool.plugin, tool.description.split(". ")[0].rstrip("."))
    console.print(table)
