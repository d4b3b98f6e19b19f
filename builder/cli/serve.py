"""``builder serve``: the HTTP service under uvicorn."""

from __future__ import annotations

import os
import socket
import sys
import tempfile

import typer

from builder.cli.app import app, err_console
from builder.errors import UnsafeProductionSettings

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def worker_app() -> object:
    """The app of one uvicorn worker process (``--workers`` > 1), logging configured."""
    from builder.http.app import create_app
    from builder.log import configure_logging
    from builder.settings import get_settings

    settings = get_settings()
    configure_logging(settings, stream=sys.stderr)
    return create_app(settings, tune_collector=True)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, help="Worker processes (each a full service)."),
    access_log: bool = typer.Option(True, help="Log every request (uvicorn's access log)."),
    run_worker: bool = typer.Option(
        True,
        "--worker/--no-worker",
        help="Also work queued runs in this process (default); --no-worker leaves them "
        "to `builder worker` processes.",
    ),
) -> None:
    """Serve the HTTP API (docs/api.md) until interrupted."""
    import uvicorn

    from builder.log import configure_logging
    from builder.settings import get_settings

    if not run_worker:
        # Read by every uvicorn worker process's settings too.
        os.environ["BUILDER_RUN_WORKER"] = "false"
        get_settings.cache_clear()
    settings = get_settings()
    try:
        settings.validate_for_production()
    except UnsafeProductionSettings as exc:
        err_console.print(str(exc), soft_wrap=True)
        raise typer.Exit(2) from None
    configure_logging(settings, stream=sys.stderr)
    options: dict[str, object] = {
        "host": host,
        "port": port,
        "log_config": None,  # our logging: JSON in production, the redactor on every line
        "access_log": access_log,
        "proxy_headers": True,
        # Open streams get this long to end before the runs' own grace begins.
        "timeout_graceful_shutdown": 5,
    }
    if workers == 1:
        from builder.http.app import create_app

        served = create_app(settings, tune_collector=True)
        if settings.preview_port is None:
            uvicorn.run(served, **options)  # type: ignore[arg-type]
        else:
            _serve_with_preview(served, host, port, settings.preview_port, options)
        return
    if settings.preview_port is not None:
        err_console.print(
            "BUILDER_PREVIEW_PORT needs --workers 1; with more workers serve previews "
            "on a wildcard host (BUILDER_PREVIEW_BASE_URL)",
            soft_wrap=True,
        )
        raise typer.Exit(2)
    if _MULTIPROC_ENV not in os.environ:
        # Workers share metrics through files; a fresh directory per server start.
        os.environ[_MULTIPROC_ENV] = tempfile.mkdtemp(prefix="builder-metrics-")
    uvicorn.run(
        "builder.cli.serve:worker_app",
        factory=True,
        workers=workers,
        **options,  # type: ignore[arg-type]
    )


def _serve_with_preview(
    app: object, host: str, port: int, preview_port: int, options: dict[str, object]
) -> None:
    """One server, two listeners: the API on ``port``, previews on ``preview_port``.

    The preview listener is a different origin (another port, and ``*.localhost``
    names), so a preview's scripts cannot read the API's responses or the studio's
    storage; :class:`~builder.http.preview.PreviewDispatch` tells the two apart.
    """
    import uvicorn

    config = uvicorn.Config(app, **options)  # type: ignore[arg-type]
    uvicorn.Server(config).run(sockets=listeners(host, port, preview_port))


def listeners(host: str, *ports: int) -> list[socket.socket]:
    """Bound sockets for one server on several ports (the API and the preview listener).

    Raises:
        typer.Exit: A port is taken (after printing one line saying which).
    """
    sockets = []
    for number in ports:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, number))
        except OSError as exc:
            err_console.print(f"cannot listen on {host}:{number}: {exc.strerror}", soft_wrap=True)
            raise typer.Exit(2) from None
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets
