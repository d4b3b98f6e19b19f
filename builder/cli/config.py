"""``builder config``: show the effective settings and the settings reference."""

from __future__ import annotations

import json

import typer

from builder.cli.app import app, console, err_console

config_app = typer.Typer(help="Inspect configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def show() -> None:
    """Print the effective settings as JSON, with secrets masked."""
    from builder.log import Redactor
    from builder.settings import get_settings

    settings = get_settings()
    data = json.loads(settings.model_dump_json())
    masked = Redactor(settings.secret_values()).redact(data)
    console.print_json(data=masked)


@config_app.command("reference")
def reference() -> None:
    """Print every setting, its environment variable and default as a Markdown table."""
    from builder.settings import settings_table

    typer.echo(settings_table())


@config_app.command("check")
def check() -> None:
    """Run the checks `builder serve` runs at start: settings, model, database, risks."""
    import asyncio

    from builder.preflight import preflight
    from builder.settings import get_settings

    settings = get_settings()
    report = asyncio.run(preflight(settings))
    for warning in report.warnings:
        err_console.print(f"[yellow]warning[/yellow]: {warning}", soft_wrap=True)
    report.raise_for_errors()
    console.print(
        f"settings are valid for {settings.environment}"
        + (f" ({len(report.warnings)} warning(s))" if report.warnings else "")
    )
