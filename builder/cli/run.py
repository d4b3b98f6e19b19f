"""``builder demo`` and ``builder run``: the agent at work, with live progress."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from builder.cli.app import app, console, err_console, log_file

if TYPE_CHECKING:
    from collections.abc import Sequence

    from builder.images import Image
    from builder.runs.events import RunEvent
    from builder.settings import Settings

LOCAL_USER = "local"


def _render(event: RunEvent, *, started: float) -> None:
    data = event.data
    clock = f"[dim]{time.perf_counter() - started:6.1f}s[/dim]"
    if event.type == "queued":
        if "position" in data:  # the first only says the run is recorded
            console.print(f"{clock} [dim]queued, {data['position']} ahead[/dim]")
    elif event.type == "run_started":
        how = "resuming" if data.get("resumed") else "started"
        console.print(f"{clock} run {data['run_id'][:8]} {how}")
    elif event.type == "tool_start":
        args = ", ".join(f"{k}={v!r}" for k, v in data.get("args", {}).items())
        console.print(f"{clock} [cyan]→ {data['tool']}[/cyan]({args[:100]})", soft_wrap=True)
    elif event.type == "tool_end":
        mark = "[green]✓[/green]" if data.get("ok") else "[red]✗[/red]"
        first = (data.get("result") or "").splitlines()[0][:110] if data.get("result") else ""
        console.print(f"{clock} {mark} {data['tool']} ({data['duration_ms']:.0f} ms) {first}")
    elif event.type == "check":
        mark = "[green]✓[/green]" if data.get("passed") else "[red]✗[/red]"
        sources = ", ".join(f["source"] for f in data.get("findings", []))
        took = data.get("duration_ms") or 0
        console.print(f"{clock} {mark} end-of-turn check ({sources}) ({took:.0f} ms)")
    elif event.type == "snapshot":
        console.print(f"{clock} [dim]saved version {data['version']}[/dim]")
    elif event.type == "message" and data.get("content") and not data.get("tool_calls"):
        console.print(f"\n[bold]assistant[/bold]: {data['content']}\n", soft_wrap=True)
    elif event.type == "error":
        console.print(f"{clock} [red]error[/red] {data.get('code')}: {data.get('message')}")


def _summary(result: dict[str, object], seconds: float, workspace: Path | None) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("status", f"{result['status']} ({result['stop_reason'] or '-'})")
    for label, key in (
        ("created", "files_created"),
        ("changed", "files_changed"),
        ("deleted", "files_deleted"),
    ):
        files = result[key]
        assert isinstance(files, list)
        table.add_row(f"files {label}", ", ".join(files) or "-")
    tokens = f"{result['input_tokens']:,} in, {result['output_tokens']:,} out"
    table.add_row("tokens", f"{result['total_tokens']:,} ({tokens})")
    if result.get("cost_usd") is not None:
        table.add_row("cost", f"${result['cost_usd']:.4f}")
    table.add_row("steps", str(result["steps"]))
    table.add_row("version", str(result["snapshot_version"] or "-"))
    if workspace is not None:
        table.add_row("workspace", str(workspace))
    table.add_row("preview", str(result["preview_url"] or "-"))
    table.add_row("time", f"{seconds:.1f} s")
    console.print(table)


async def _session(
    settings: Settings,
    *,
    model: str,
    prompt: str | None,
    project_name: str,
    new_project: bool,
    resume: bool,
    serve: bool,
    export: Path | None,
    studio_port: int | None = None,
    starter: str | None = None,
    images: Sequence[Image] = (),
) -> int:
    import asyncio

    from builder.persistence.database import Database
    from builder.persistence.migrations import upgrade_database
    from builder.persistence.projects import create_project, list_projects, open_project
    from builder.persistence.snapshots import read_file, tree
    from builder.persistence.users import get_or_create_user
    from builder.runs.service import RunService

    started = time.perf_counter()
    settings = without_gateway(settings)
    db = Database.from_settings(settings, cached=False)
    try:
        await upgrade_database(db)
        user = await get_or_create_user(db, name=LOCAL_USER)
        project_id: uuid.UUID | None = None
        if not new_project:
            page = await list_projects(db, user_id=user.id, limit=200)
            project_id = next((p.id for p in page.items if p.name == project_name), None)
        if project_id is None:
            if starter is None:
                project = await create_project(db, user_id=user.id, name=project_name)
            else:
                from builder.starters import create_project as create_from_starter

                project = await create_from_starter(
                    db, user_id=user.id, name=project_name, starter=starter, settings=settings
                )
            project_id = project.id
            console.print(f"project [bold]{project_name}[/bold] ({project_id})")
        else:
            console.print(f"continuing project [bold]{project_name}[/bold] ({project_id})")
        await open_project(db, user_id=user.id, project_id=project_id)
        async with RunService.open(settings, db=db, model=model) as service:
            handle = await service.start(
                user_id=user.id, project_id=project_id, prompt=prompt, resume=resume, images=images
            )
            async for event in handle.events():
                _render(event, started=started)
            result = await handle.wait()
            workspace = settings.data_dir / "workspaces" / str(project_id)
            _summary(
                result.as_dict(),
                time.perf_counter() - started,
                workspace if settings.sandbox_backend != "e2b" else None,
            )
            if result.status == "error":
                err_console.print(
                    f"[red]error[/red] ({result.error_code}): {result.error}\n"
                    f"full log: {log_file(settings)} (or run again with --verbose)",
                    soft_wrap=True,
                )
            if export is not None:
                files = {
                    path: await read_file(db, project_id=project_id, path=path)
                    for path in await tree(db, project_id=project_id)
                }
                await asyncio.to_thread(_export, export, files)
                console.print(f"files exported to {export}")
            if serve and result.preview_url and result.status == "success":
                with contextlib.suppress(asyncio.CancelledError):
                    await _until_stopped(f"serving {result.preview_url} — press Ctrl+C to stop")
        if studio_port is not None and result.status == "success":
            await _serve_studio(settings, project_id, studio_port)
        return 0 if result.status == "success" else 1
    finally:
        await db.dispose()
        if settings.database_url is None:
            # Kept running so the next command starts in milliseconds; say so.
            console.print(
                f"[dim]the embedded PostgreSQL keeps running in {settings.data_dir / 'postgres'}"
                "; `builder db stop` stops it[/dim]",
                soft_wrap=True,
            )


async def _until_stopped(notice: str) -> None:
    """Print ``notice`` once listening, then wait for Ctrl+C (SIGINT) or SIGTERM.

    Handled here rather than left to ``asyncio.run``, which stops on SIGINT only when
    the process started with Python's own handler: a command started in the background
    by a script inherits SIGINT ignored, and its preview could then only be killed.
    SIGTERM (a process manager's stop) ends it the same way, closing the dev server.
    """
    import asyncio

    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        loop.add_signal_handler(sig, stopped.set)
    try:
        console.print(notice)
        await stopped.wait()
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)


async def _serve_studio(settings: Settings, project_id: uuid.UUID, port: int) -> None:
    """Serve the API and the studio (previews on ``port + 1``) until Ctrl+C."""
    import asyncio

    import uvicorn

    from builder.cli.serve import listeners
    from builder.http.app import create_app

    preview_port = settings.preview_port or port + 1
    settings = settings.model_copy(update={"preview_port": preview_port})
    sockets = listeners("127.0.0.1", port, preview_port)
    config = uvicorn.Config(
        create_app(settings), log_config=None, access_log=False, timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)

    async def when_started() -> None:
        import httpx

        while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, not an event
            await asyncio.sleep(0.05)
        console.print(
            f"studio http://127.0.0.1:{port}/#/p/{project_id} — press Ctrl+C to stop",
            soft_wrap=True,
        )
        if not settings.anonymous_allowed:
            console.print("sign in with a key from `builder keys create --user local`")
            return
        # Start the preview through the API, as the studio's "Start preview" button does.
        async with httpx.AsyncClient(timeout=settings.timeout_dev_server + 30) as client:
            with contextlib.suppress(httpx.HTTPError):
                await client.post(f"http://127.0.0.1:{port}/api/sandbox/{project_id}/dev-server")

    starting = asyncio.create_task(when_started())
    try:
        await server.serve(sockets=sockets)
    finally:
        if not starting.done():
            starting.cancel()


def _export(directory: Path, files: dict[str, bytes]) -> None:
    for path, data in files.items():
        target = directory / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def without_gateway(settings: Settings) -> Settings:
    """Settings for a run in this process, which serves no previews.

    Its dev server belongs to this process, so no preview gateway (``builder serve``, on
    this machine or another) can reach it: the run reports the dev server's own URL
    (``http://127.0.0.1:<port>/``, or the E2B host), which opens, instead of a gateway
    link that would answer 404, and records no replica for other replicas to forward to.
    """
    return settings.model_copy(
        update={"preview_port": None, "preview_base_url": None, "advertise_url": None}
    )


DEMOS = {
    "static": (
        "scripted:demo",
        "Build a small website for Harbor Lane Bakery: home, about and contact pages "
        "with a shared stylesheet and a contact form.",
    ),
    "vite-react-ts": (
        "scripted:react-demo",
        "Build a one-page React site for Harbor Lane Bakery: a headline, a menu of breads "
        "with prices, and the opening hours.",
    ),
}
"""What ``builder demo --starter`` builds: the scripted model and the prompt."""


def _run_session(**kwargs: object) -> None:
    import asyncio

    try:
        code = asyncio.run(_session(**kwargs))  # type: ignore[arg-type]
    except KeyboardInterrupt:
        code = 130
    raise typer.Exit(code)


@app.command()
def demo(
    directory: Path | None = typer.Option(
        None, "--dir", help="Also export the finished site's files into this directory."
    ),
    serve: bool | None = typer.Option(
        None,
        "--serve/--exit",
        help="Then serve the studio on the demo project, with its preview, until Ctrl+C "
        "(default: when run in a terminal).",
    ),
    port: int = typer.Option(
        8000, min=1, max=65534, help="The studio's port (its previews use the next one)."
    ),
    starter: str = typer.Option(
        "static",
        "--starter",
        help="static: plain HTML, offline and instant; vite-react-ts: a React + TypeScript "
        "site (installs its packages with npm from the registry on first run).",
    ),
) -> None:
    """Build a small demo site with a scripted model, a local sandbox and the embedded
    database (offline, unless the starter installs packages); then open it in the studio
    at the printed URL."""
    if starter not in DEMOS:
        raise typer.BadParameter(
            f"there is no demo for the {starter!r} starter; the demos are: {', '.join(DEMOS)}",
            param_hint="--starter",
        )
    from builder.settings import get_settings

    model, prompt = DEMOS[starter]
    settings = get_settings().model_copy(update={"model": model, "sandbox_backend": "local"})
    _run_session(
        settings=settings,
        model=model,
        prompt=prompt,
        starter=None if starter == "static" else starter,
        project_name=f"demo-{time.strftime('%Y%m%d-%H%M%S')}",
        new_project=True,
        resume=False,
        serve=False,  # the studio serves the preview
        export=directory,
        studio_port=port if (sys.stdout.isatty() if serve is None else serve) else None,
    )


@app.command()
def run(
    prompt: str | None = typer.Argument(None, help="What to build or change."),
    project: str = typer.Option(
        "default", "--project", "-p", help="Project name (created if new)."
    ),
    model: str | None = typer.Option(
        None, "--model", "-m", help="provider:model (default: BUILDER_MODEL)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Finish a run a crash interrupted."),
    serve: bool = typer.Option(
        False, "--serve/--exit", help="Keep the preview running until Ctrl+C or SIGTERM."
    ),
    image: list[Path] = typer.Option(
        [],
        "--image",
        "-i",
        help="Attach an image (PNG, JPEG, WebP, GIF) to the prompt; repeat for more (up to 4).",
    ),
) -> None:
    """Run the agent on a project; a second run on the same project continues it."""
    from builder.settings import get_settings

    settings = get_settings()
    chosen = model or settings.model
    if chosen is None:
        from builder.errors import ConfigurationError

        raise ConfigurationError(
            "no model configured: pass --model provider:model or set BUILDER_MODEL "
            "(e.g. openai:gpt-4.1, anthropic:claude-sonnet-4-5, scripted:demo)"
        )
    if prompt is None and not resume:
        raise typer.BadParameter("give a prompt, or --resume to finish an interrupted run")
    from builder.images import check_image_count, image_from_file

    check_image_count(image)
    images = [
        image_from_file(path, limit=settings.max_image_bytes, index=index)
        for index, path in enumerate(image)
    ]
    _run_session(
        settings=settings.model_copy(update={"model": chosen}),
        model=chosen,
        prompt=prompt,
        project_name=project,
        new_project=False,
        resume=resume,
        serve=serve,
        export=None,
        images=images,
    )
