"""Error tracking with Sentry: off unless ``BUILDER_SENTRY_DSN`` is set.

Events carry the request id and the user id as tags and pass through the same
:class:`~builder.log.Redactor` as the logs before they leave the process
(``before_send``), so configured secrets, API keys and tokens are masked in messages,
exception values, stack-frame variables and breadcrumbs. Personal data is off
(``send_default_pii=False``, or ``data_collection`` with ``user_info`` off on SDKs that
replaced it): no IP addresses, cookies or request bodies are attached.

The automatic framework integrations are off: unexpected errors are reported exactly
once, by :func:`~builder.http.errors.answer_escaped_error`, with the request's
tags. Error-level log lines of other loggers (a run that failed in the background)
still become events through the logging integration.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.logging import ignore_logger
from sentry_sdk.types import Event, Hint

from builder._version import __version__
from builder.log import Redactor
from builder.settings import Settings

__all__ = ["init_sentry", "report_exception", "sentry_enabled"]

_enabled = False


def sentry_enabled() -> bool:
    """Whether events are being sent."""
    return _enabled


def init_sentry(settings: Settings, *, transport: Any = None) -> bool:
    """Start reporting to the configured DSN; returns False (a no-op) when there is none.

    Args:
        settings: ``sentry_dsn``, ``environment`` and the secrets to mask.
        transport: A Sentry transport to use instead of HTTP (for tests).
    """
    global _enabled
    if settings.sentry_dsn is None or not settings.sentry_dsn.get_secret_value():
        _enabled = False
        return False
    redactor = Redactor(settings.secret_values())

    def before_send(event: Event, hint: Hint) -> Event | None:
        scrubbed: Event = redactor.redact(dict(event))
        return scrubbed

    options: dict[str, Any] = {
        "dsn": settings.sentry_dsn.get_secret_value(),
        "environment": settings.environment,
        "release": f"builder@{__version__}",
        "auto_enabling_integrations": False,
        "before_send": before_send,
        "before_breadcrumb": lambda crumb, hint: redactor.redact(dict(crumb)),
        "traces_sample_rate": 0.0,
    }
    options.update(_no_personal_data())
    if transport is not None:
        options["transport"] = transport
    sentry_sdk.init(**options)
    # This logger's lines repeat what report_exception sends, without the tags.
    ignore_logger("builder.http.errors")
    _enabled = True
    return True


def _no_personal_data() -> dict[str, Any]:
    """No user data (IP, cookies, bodies): ``data_collection`` where the SDK has it,
    ``send_default_pii=False`` on older SDKs (deprecated, with a warning, on newer)."""
    parameters = inspect.signature(sentry_sdk.consts.ClientConstructor.__init__).parameters
    if "data_collection" in parameters:
        return {"data_collection": {"user_info": False, "http_bodies": []}}
    return {"send_default_pii": False}


def report_exception(exc: BaseException, state: Mapping[str, Any]) -> None:
    """Send an exception to Sentry tagged with the request id and user (if enabled)."""
    if not _enabled:
        return
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("request_id", str(state.get("request_id", "-")))
        principal = state.get("principal")
        if principal is not None:
            scope.set_tag("user_id", str(principal.user.id))
        sentry_sdk.capture_exception(exc)
