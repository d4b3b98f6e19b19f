"""``builder sandbox``: check what the configured sandbox backend isolates on this host."""

from __future__ import annotations

import typer

from builder.cli.app import app, console, err_console

sandbox_app = typer.Typer(help="Inspect the sandbox backend.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("check")
def check() -> None:
    """Run the escape probes in a fresh sandbox and print what is isolated.

    Exits with status 1 when a probe gets through that the configured backend
    promises to block (bubblewrap or pasta not working, for one).
    """
    import asyncio

    from rich.table import Table

    from builder.sandbox.check import run_probes
    from builder.settings import get_settings

    results, described = asyncio.run(run_probes(get_settings()))
    table = Table(title=described)
    for column in ("area", "probe", "outcome", "expected", ""):
        table.add_column(column)
    for result in results:
        outcome = {True: "blocked", False: "open", None: "not run"}[result.blocked]
        if result.detail:
            outcome += f" ({result.detail})"
        expected = {True: "blocked", False: "open", None: "-"}[result.expected]
        mark = "[green]ok[/green]" if result.ok else "[red]WEAKER[/red]"
        table.add_row(result.area, result.probe, outcome, expected, mark)
    console.print(table)
    weaker = [r for r in results if not r.ok]
    if weaker:
        err_console.print(
            f"[red]error[/red]: {len(weaker)} probe(s) got through that the configured "
            f"sandbox should block: " + "; ".join(r.probe for r in weaker),
            soft_wrap=True,
        )
        raise typer.Exit(1)
