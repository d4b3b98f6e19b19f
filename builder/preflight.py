"""The checks a service runs before it starts, shared by ``builder serve`` and
``builder config check`` so that a configuration the check passes is one the server
accepts.

Errors stop the server: unsafe production settings, no usable chat model, an
unreachable database, or (in production) a database that is not migrated. Warnings
name what works but will not scale or is not safe for strangers: the embedded
database, no Redis, commands running unconfined on the host.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from builder.errors import BuilderError, ConfigurationError, UnsafeProductionSettings
from builder.settings import Settings

if TYPE_CHECKING:
    from builder.persistence.database import Database

__all__ = ["Preflight", "preflight"]


@dataclass
class Preflight:
    """What the checks found."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    migrate: bool = False
    """The database is reachable but behind; development migrates it at start."""

    @property
    def ok(self) -> bool:
        """No error: the server may start."""
        return not self.errors

    def raise_for_errors(self) -> None:
        """Raise one error listing every problem, as the server refuses to start.

        Raises:
            ConfigurationError: One or more errors, each on its own line.
        """
        if self.errors:
            lines = "\n".join(f"  - {error}" for error in self.errors)
            raise ConfigurationError(
                f"cannot start: {len(self.errors)} problem(s):\n{lines}", problems=self.errors
            )


async def preflight(settings: Settings, *, db: Database | None = None) -> Preflight:
    """Check settings, the model, the database and production risks.

    Args:
        settings: What to check.
        db: The database to check; None checks the configured URL (and skips the
            embedded database, which the server starts itself).

    Returns:
        Errors and warnings; nothing is raised for a failed check.
    """
    report = Preflight()
    try:
        settings.validate_for_production()
    except UnsafeProductionSettings as exc:
        report.errors.extend(exc.problems)
    _check_model(settings, report)
    await _check_database(settings, db, report)
    report.warnings.extend(_sandbox_warnings(settings))
    if settings.is_production:
        report.warnings.extend(_production_warnings(settings))
    return report


def _sandbox_warnings(settings: Settings) -> list[str]:
    """What the local sandbox falls back to on this host (probed, as the server would)."""
    if settings.sandbox_backend != "local":
        return []
    from builder.sandbox.local.confine import bwrap_status, network_mode

    bwrap, reason = bwrap_status()
    if bwrap is None:
        return [f"sandbox commands run unconfined on this host: {reason}"]
    warnings = []
    _, _, fallback = network_mode(settings.sandbox_network)
    if fallback is not None:
        warnings.append(
            f"BUILDER_SANDBOX_NETWORK is isolated but {fallback}: confined commands use "
            "the host's network and can reach its loopback services (PostgreSQL, Redis)"
        )
    if os.geteuid() == 0:
        from builder.sandbox.local.owner import HostUser, reachable

        # The data directory and its workspaces directory are opened to the sandbox's
        # group when a sandbox starts; what lies above them is the operator's.
        user = HostUser(settings.sandbox_uid, settings.sandbox_gid)
        blocked = reachable(settings.data_dir.parent, user)
        if blocked is not None:
            warnings.append(
                f"the service runs as root and BUILDER_SANDBOX_UID {user.uid} cannot pass "
                f"through {blocked}: confined commands run as root outside the sandbox, "
                "without a process limit; put BUILDER_DATA_DIR where every parent directory "
                "is searchable (e.g. /var/lib/builder)"
            )
    return warnings


def _check_model(settings: Settings, report: Preflight) -> None:
    from builder.models.factory import load_chat_model

    try:
        load_chat_model(settings=settings)
    except ConfigurationError as exc:
        report.errors.append(exc.message)


async def _check_database(settings: Settings, db: Database | None, report: Preflight) -> None:
    from builder.persistence.migrations import current_revision, head_revision

    target = db or settings.database_url
    if target is None:
        return  # the embedded server is started by the service itself
    try:
        current = await current_revision(target, settings=settings)
    except BuilderError as exc:
        report.errors.append(f"the database cannot be reached: {exc.message}")
        return
    head = head_revision()
    if current == head:
        return
    if settings.is_production:
        report.errors.append(
            f"the database is at revision {current or 'none'}, not {head}: run "
            "`builder db upgrade` before starting the server"
        )
    else:
        report.migrate = True
        report.warnings.append(
            f"the database is at revision {current or 'none'}, not {head}: the server "
            "migrates it when it starts (development only)"
        )


def _production_warnings(settings: Settings) -> list[str]:
    warnings = []
    if settings.database_url is None:
        warnings.append(
            "BUILDER_DATABASE_URL is not set: the embedded PostgreSQL in the data directory "
            "serves one machine only and has no backups"
        )
    if settings.redis_url is None:
        warnings.append(
            "BUILDER_REDIS_URL is not set: rate limits, the cache and run events stay in "
            "each process, so replicas neither share limits nor follow each other's runs"
        )
    if settings.sandbox_backend == "local" and settings.sandbox_network == "host":
        warnings.append(
            "BUILDER_SANDBOX_NETWORK is host: confined commands can still reach this host's "
            "loopback services (PostgreSQL, Redis); use isolated (the default, needs pasta) "
            "for strangers' projects"
        )
    if settings.sandbox_backend == "local-unconfined":
        warnings.append(
            "BUILDER_SANDBOX_BACKEND is local-unconfined: agent commands run on this host as "
            "the service's user"
        )
    return warnings
