"""The embedded PostgreSQL used when no ``BUILDER_DATABASE_URL`` is set.

A real PostgreSQL server (the binaries shipped by the ``pgserver`` package) runs from
``<data_dir>/postgres`` and listens on a Unix socket only. builder talks to it exactly as
to any other server: same SQL, same migrations. It is left running when the process
exits and reused by the next start, so a CLI command does not pay for a server start
each time; :func:`stop_embedded` stops it.

Two processes starting at once are safe: pgserver initialises the data directory and
starts the server under an inter-process file lock, and the second process finds the
server the first one started (``postmaster.pid``) and connects to it.
"""

from __future__ import annotations

import atexit
import warnings
from pathlib import Path
from types import ModuleType

from builder.errors import DependencyUnavailable
from builder.log import get_logger
from builder.settings import normalize_database_url

__all__ = ["start_embedded", "stop_embedded"]

_log = get_logger("builder.persistence.embedded")


def _pgserver() -> ModuleType:
    # pgserver computes its lock directory at import time through platformdirs, which
    # warns when XDG_RUNTIME_DIR is unset (servers, containers) and falls back to /tmp.
    # The fallback is what we want; the warning is noise to an operator.
    from platformdirs.api import RuntimeDirWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeDirWarning)
        import pgserver

    return pgserver


def start_embedded(directory: Path) -> str:
    """Start the embedded server in ``directory`` (or reuse the running one).

    Args:
        directory: The server's data directory; created, with its parents, if missing.

    Returns:
        The SQLAlchemy URL (``postgresql+psycopg://``) of its ``postgres`` database.

    Raises:
        DependencyUnavailable: The server could not be initialised or started; the
            message names the server log.
    """
    directory = directory.expanduser().resolve()
    try:
        # pgserver creates a missing data directory before taking its lock and fails if
        # it appeared meanwhile: a second process starting at once would lose that race.
        directory.mkdir(parents=True, exist_ok=True)
        server = _pgserver().get_server(directory, cleanup_mode=None)
        uri: str = server.get_uri()
    except Exception as exc:
        raise DependencyUnavailable(
            "postgresql",
            f"could not start the embedded PostgreSQL in {directory}: {exc} "
            f"(server log: {directory / 'log'}); set BUILDER_DATABASE_URL to use another server",
        ) from exc
    _log.info("db.embedded.ready", directory=str(directory))
    return normalize_database_url(uri)


def stop_embedded(directory: Path) -> bool:
    """Stop the embedded server of ``directory``; False when it was not running.

    Raises:
        DependencyUnavailable: pg_ctl failed to stop a running server.
    """
    import subprocess

    directory = directory.expanduser().resolve()
    if not (directory / "postmaster.pid").exists():
        return False
    pgserver = _pgserver()
    from pgserver import _commands

    server_class = pgserver.PostgresServer
    user = "pgserver" if _running_as_root() else None
    instance = server_class._instances.pop(directory, None)
    if instance is not None:
        # Its exit hook would look for the handle we just dropped.
        atexit.unregister(instance._cleanup)
    try:
        _commands.pg_ctl(  # type: ignore[attr-defined]  # defined at import time
            ["-w", "stop", "-m", "fast"], pgdata=directory, user=user
        )
    except subprocess.CalledProcessError as exc:
        if not (directory / "postmaster.pid").exists():
            return False
        raise DependencyUnavailable(
            "postgresql", f"could not stop the embedded PostgreSQL in {directory}: {exc}"
        ) from exc
    return True


def _running_as_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0
