"""Structured logging: structlog configured once, with context and redaction.

* JSON lines in production, readable console lines in development.
* Context variables bound with :func:`bind_context` (``request_id``, ``run_id``,
  ``project_id``, ``tool``, ...) appear on every line logged in that context.
* :class:`Redactor` masks API keys, bearer and OAuth tokens, passwords in URLs,
  secret-named fields and every configured secret, anywhere in an event — nested
  dicts, lists and formatted exception text included. It runs last, after
  exceptions are rendered, so nothing reaches the output unmasked.
"""

from __future__ import annotations

import functools
import logging
import logging.handlers
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from builder.settings import Settings

__all__ = [
    "Redactor",
    "bind_context",
    "bound_context",
    "clear_context",
    "configure_logging",
    "get_logger",
    "redactor",
    "reset_context",
    "timed",
]

MASK = "***"

# Field names whose whole value is a secret, whatever it looks like.
_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|authorization|cookie|credential|private[_-]?key"
    r"|dsn|encryption[_-]?keys?)$",
    re.IGNORECASE,
)

# Secrets recognisable by their shape, wherever they occur in text.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host  → keep the user, mask the password
    (re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(?=@)"), r"\g<head>***"),
    # Authorization: Bearer xxx / Basic xxx / token xxx
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    # Provider and service key shapes
    (re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}"), MASK),  # OpenAI, Anthropic
    (re.compile(r"\bbld_[A-Za-z0-9_-]{16,}"), MASK),  # builder API keys
    (re.compile(r"\be2b_[A-Za-z0-9]{16,}"), MASK),  # E2B
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), MASK),  # GitHub tokens
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"), MASK),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), MASK),  # Slack
    (re.compile(r"\bya29\.[A-Za-z0-9._-]{10,}"), MASK),  # Google OAuth access tokens
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), MASK),  # AWS access key ids
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), MASK),  # JWT
    # key=value / "key": "value" pairs in free text
    (
        re.compile(
            r"(?i)(?P<key>(?:access|refresh|id)?_?token|api[_-]?key|password|secret|client_secret)"
            r"(?P<sep>\"?\s*[:=]\s*\"?)(?P<val>[^\s\"&,;]{4,})"
        ),
        r"\g<key>\g<sep>***",
    ),
)


def _any_of(patterns: Iterable[re.Pattern[str]]) -> re.Pattern[str]:
    """One pattern matching wherever any of ``patterns`` does (flags scoped to each,
    groups unnamed), to pass over text none of them matches in one search."""
    parts = []
    for pattern in patterns:
        source = re.sub(r"\(\?P<\w+>", "(?:", pattern.pattern)
        if source.startswith("(?i)"):
            source = f"(?i:{source[4:]})"
        parts.append(f"(?:{source})")
    return re.compile("|".join(parts))


_ANY_PATTERN = _any_of(pattern for pattern, _ in _PATTERNS)
_CACHED_TEXT = 256
"""Texts up to this long are masked once and remembered."""


@functools.lru_cache(maxsize=1024)
def _secret_key(key: str) -> bool:
    """Whether a field named ``key`` holds a secret whatever its value."""
    return _SECRET_KEY.search(key) is not None


class Redactor:
    """A structlog processor that masks secrets anywhere in an event.

    Args:
        secrets: Exact values to mask wherever they appear (configured keys).
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret containing another is masked whole.
        self._secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)
        # Log lines repeat their values (event names, ids, paths): short texts are
        # masked once each (functools' cache is safe across threads).
        self._cached = functools.lru_cache(maxsize=4096)(self._masked)

    def add_secret(self, value: str) -> None:
        """Mask ``value`` from now on (at least 6 characters; shorter ones are ignored)."""
        if len(value) >= 6 and value not in self._secrets:
            self._secrets = sorted([*self._secrets, value], key=len, reverse=True)
            self._cached.cache_clear()

    def redact_text(self, text: str) -> str:
        """``text`` with every known secret and secret-shaped substring masked."""
        if len(text) <= _CACHED_TEXT:
            return self._cached(text)
        return self._masked(text)

    def _masked(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if _ANY_PATTERN.search(text) is None:
            return text  # most text: one search instead of a substitution per pattern
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text

    def redact(self, value: Any, key: str | None = None) -> Any:
        """A copy of ``value`` with secrets masked, recursing into containers."""
        if key is not None and _secret_key(key) and value not in (None, "", False):
            return MASK
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, Mapping):
            return {k: self.redact(v, str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.redact(v) for v in value]
        if isinstance(value, BaseException):
            return self.redact_text(f"{type(value).__name__}: {value}")
        if isinstance(value, (int, float, bool)) or value is None:
            return value
        return self.redact_text(repr(value))

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        return {k: self.redact(v, k) for k, v in event_dict.items()}


_redactor = Redactor()


def _without_traceback(_logger: Any, _name: str, event: EventDict) -> EventDict:
    """Replace an exception's traceback by one ``error`` field naming it."""
    exc_info = event.pop("exc_info", None)
    if exc_info:
        if exc_info is True:
            exc_info = sys.exc_info()
        exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
        if isinstance(exc, BaseException):
            event.setdefault("error", f"{type(exc).__name__}: {exc}"[:300])
    return event


def configure_logging(
    settings: Settings,
    *,
    stream: TextIO | None = None,
    tracebacks: bool = True,
    log_file: Path | None = None,
) -> Redactor:
    """Configure structlog and the standard ``logging`` root from settings.

    structlog events and standard-library records (uvicorn, alembic, ...) go through
    the same pipeline and the same redaction. Safe to call more than once; the last
    call wins. Returns the redactor, so callers can register secrets learned later.

    Args:
        settings: Level, format and the secrets to redact.
        stream: Where log lines go (default: stderr).
        tracebacks: Render tracebacks on ``stream``; False names the exception in one
            field instead (a command's terminal), while ``log_file`` keeps them.
        log_file: Also append every record, tracebacks included, to this file
            (rotated at 5 MB, three kept); None for no file.
    """
    global _redactor
    _redactor = Redactor(settings.secret_values())
    renderer: Processor
    if settings.effective_log_format == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    level = logging.getLevelNamesMapping()[settings.log_level]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )

    def formatter(*, with_tracebacks: bool) -> logging.Formatter:
        first: Processor = (
            # Render exceptions to text first so the redactor sees the traceback too.
            structlog.processors.format_exc_info if with_tracebacks else _without_traceback
        )
        return structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                first,
                _redactor,
                renderer,
            ],
        )

    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    handlers[0].setFormatter(formatter(with_tracebacks=tracebacks))
    if log_file is not None:
        try:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            to_file = logging.handlers.RotatingFileHandler(
                log_file, maxBytes=5_000_000, backupCount=3, encoding="utf-8", delay=True
            )
        except OSError:
            pass  # an unwritable data directory must not stop the command
        else:
            to_file.setFormatter(formatter(with_tracebacks=True))
            handlers.append(to_file)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_builder", False):
            root.removeHandler(existing)
            existing.close()
    for handler in handlers:
        handler._builder = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)
    return _redactor


def redactor() -> Redactor:
    """The redactor of the current logging configuration."""
    return _redactor


def _library_defaults() -> None:
    """Route builder's logs through the standard ``logging`` module until configured.

    An application that imports builder without calling :func:`configure_logging`
    (or configuring structlog itself) then sees builder's warnings and errors the way
    it sees any library's — through its own ``logging`` setup, or on stderr — instead
    of structlog's default of printing every line to stdout.
    """
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.processors.format_exc_info,
            _redactor,
            structlog.processors.KeyValueRenderer(key_order=["event"], drop_missing=True),
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None, **bound: Any) -> structlog.stdlib.BoundLogger:
    """A logger, optionally with values bound to every line it writes."""
    _library_defaults()
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger.bind(**bound) if bound else logger


def bind_context(**values: Any) -> Mapping[str, Any]:
    """Bind values (request_id, run_id, project_id, tool, ...) to every later log line.

    Returns what :func:`reset_context` needs to put the previous values back.
    """
    return structlog.contextvars.bind_contextvars(**values)


def reset_context(tokens: Mapping[str, Any]) -> None:
    """Put back the context values a :func:`bind_context` call replaced."""
    structlog.contextvars.reset_contextvars(**tokens)


def clear_context(*keys: str) -> None:
    """Unbind the given context keys, or all of them when none are given."""
    if keys:
        structlog.contextvars.unbind_contextvars(*keys)
    else:
        structlog.contextvars.clear_contextvars()


@contextmanager
def bound_context(**values: Any) -> Iterator[None]:
    """Bind context values for the duration of a ``with`` block."""
    with structlog.contextvars.bound_contextvars(**values):
        yield


@contextmanager
def timed(
    logger: structlog.stdlib.BoundLogger, event: str, **fields: Any
) -> Iterator[MutableMapping[str, Any]]:
    """Log ``event`` with ``duration_ms`` when the block ends (``error`` if it raised).

    The yielded dict can be filled inside the block with fields to log at the end.
    """
    extra: dict[str, Any] = {}
    start = time.perf_counter()
    try:
        yield extra
    except BaseException as exc:
        duration = round((time.perf_counter() - start) * 1000, 2)
        logger.warning(event, duration_ms=duration, error=type(exc).__name__, **fields, **extra)
        raise
    duration = round((time.perf_counter() - start) * 1000, 2)
    logger.info(event, duration_ms=duration, **fields, **extra)
