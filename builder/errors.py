"""The one error tree of builder.

Every error builder raises on purpose derives from :class:`BuilderError`. Errors carry
the facts a caller needs (path, size, limit, operation, seconds, ...) as attributes and
in :attr:`BuilderError.context`; they know nothing about HTTP. The HTTP layer maps
classes to status codes in one place (``builder.http.errors``)::

    BuilderError
    ├── ConfigurationError
    │   └── UnsafeProductionSettings      every problem at once, in .problems
    ├── InvalidInput
    │   ├── PathOutsideSandbox            .path, .reason
    │   ├── InvalidTool                   .tool, .plugin (a bad tool definition)
    │   ├── InvalidImage                  .index (an image of a chat turn)
    │   └── SearchTextNotUnique / SearchTextNotFound (edit_file)
    ├── NotFound                          .resource, .identifier
    ├── Conflict
    │   ├── AlreadyExists
    │   │   └── DuplicateTool             .tool, .plugin, .other_plugin
    │   ├── RunInProgress                 .project_id
    │   └── ConcurrentModification        .path (a compare-and-swap lost)
    ├── LimitExceeded                     .limit, .size
    │   ├── FileTooLarge                  .path, .size, .limit
    │   ├── QuotaExceeded                 .size, .limit
    │   ├── ImageTooLarge                 .index, .size, .limit
    │   └── RequestTooLarge               .size, .limit
    ├── OperationTimeout                  .operation, .seconds
    │   └── LockTimeout                   .key, .seconds
    ├── Unauthorized
    ├── Forbidden
    ├── RateLimited                       .retry_after, .limit
    ├── DependencyUnavailable             .dependency
    │   └── ProviderError                 .status_code, .provider (a failed model call)
    ├── PublishFailed                     .publisher, .step (a push or deploy that failed)
    └── DecryptionFailed                  .key_id

Each class has a stable machine-readable :attr:`BuilderError.code`; messages are for
people and may change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

__all__ = [
    "AlreadyExists",
    "BuilderError",
    "ConcurrentModification",
    "ConfigurationError",
    "Conflict",
    "DecryptionFailed",
    "DependencyUnavailable",
    "DuplicateTool",
    "FileTooLarge",
    "Forbidden",
    "ImageTooLarge",
    "InvalidImage",
    "InvalidInput",
    "InvalidTool",
    "LimitExceeded",
    "LockTimeout",
    "NotFound",
    "OperationTimeout",
    "PathOutsideSandbox",
    "ProviderError",
    "PublishFailed",
    "QuotaExceeded",
    "RateLimited",
    "RequestTooLarge",
    "RunInProgress",
    "SearchTextNotFound",
    "SearchTextNotUnique",
    "StaleWorkspace",
    "Unauthorized",
    "UnsafeProductionSettings",
]


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


class BuilderError(Exception):
    """Base class of every error builder raises on purpose.

    Args:
        message: A sentence for people; subclasses build one from their context.
        **context: Facts about the failure, kept as attributes and in ``context``.
    """

    code: ClassVar[str] = "builder_error"

    def __init__(self, message: str | None = None, **context: Any) -> None:
        self.context: dict[str, Any] = context
        for key, value in context.items():
            setattr(self, key, value)
        self.message = message or self.default_message()
        super().__init__(self.message)

    def default_message(self) -> str:
        """The message used when none is given."""
        return self.__class__.__name__

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in self.context.items())
        return f"{type(self).__name__}({self.message!r}{', ' if items else ''}{items})"


class ConfigurationError(BuilderError):
    """Settings are missing, malformed or inconsistent."""

    code = "configuration_error"


class UnsafeProductionSettings(ConfigurationError):
    """Production was asked for with settings that are not safe; lists every problem."""

    code = "unsafe_production_settings"
    problems: list[str]

    def __init__(self, problems: Sequence[str]) -> None:
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"refusing to start in production: {len(problems)} unsafe setting(s):\n{lines}",
            problems=list(problems),
        )


class InvalidInput(BuilderError):
    """The caller's input is malformed or not allowed."""

    code = "invalid_input"


class PathOutsideSandbox(InvalidInput):
    """A path is absolute, escapes the workspace, or is otherwise unsafe."""

    code = "path_outside_sandbox"
    path: str
    reason: str

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"unsafe path {path!r}: {reason}", path=path, reason=reason)


class InvalidTool(InvalidInput):
    """A plugin offered a tool that cannot be registered (bad name or signature)."""

    code = "invalid_tool"
    tool: str
    plugin: str

    def __init__(self, tool: str, plugin: str, reason: str) -> None:
        super().__init__(
            f"tool {tool!r} from plugin {plugin!r} cannot be registered: {reason}",
            tool=tool,
            plugin=plugin,
        )


class InvalidImage(InvalidInput):
    """An image attached to a chat turn is not one builder accepts (type, encoding,
    content, or one too many)."""

    code = "invalid_image"
    index: int | None

    def __init__(self, message: str, *, index: int | None = None) -> None:
        where = f"image {index + 1}: " if index is not None else ""
        super().__init__(f"{where}{message}", index=index)


class SearchTextNotFound(InvalidInput):
    """``edit_file``'s search text does not occur in the file."""

    code = "search_text_not_found"


class SearchTextNotUnique(InvalidInput):
    """``edit_file``'s search text occurs more than once."""

    code = "search_text_not_unique"


class NotFound(BuilderError):
    """A resource does not exist (or is not visible to the caller)."""

    code = "not_found"
    resource: str
    identifier: str

    def __init__(self, resource: str, identifier: object, message: str | None = None) -> None:
        super().__init__(
            message or f"{resource} {identifier!s} not found",
            resource=resource,
            identifier=str(identifier),
        )


class Conflict(BuilderError):
    """The request conflicts with the current state."""

    code = "conflict"


class AlreadyExists(Conflict):
    """A unique value is already taken."""

    code = "already_exists"


class DuplicateTool(AlreadyExists):
    """Two plugins registered a tool with the same name."""

    code = "duplicate_tool"
    tool: str
    plugin: str
    other_plugin: str

    def __init__(self, tool: str, plugin: str, other_plugin: str) -> None:
        super().__init__(
            f"tool {tool!r} from plugin {plugin!r} clashes with the tool of the same name "
            f"from plugin {other_plugin!r}; uninstall one or leave it out of "
            "BUILDER_LOAD_PLUGINS",
            tool=tool,
            plugin=plugin,
            other_plugin=other_plugin,
        )


class RunInProgress(Conflict):
    """A run is already in progress on this project/thread."""

    code = "run_in_progress"
    project_id: str

    def __init__(self, project_id: object) -> None:
        super().__init__(
            f"a run is already in progress for {project_id!s}; retry when it ends or enqueue",
            project_id=str(project_id),
        )


class ConcurrentModification(Conflict):
    """A file changed between read and write; the write was not made."""

    code = "concurrent_modification"
    path: str

    def __init__(self, path: str, message: str | None = None) -> None:
        super().__init__(
            message or f"{path} changed while it was being edited; read it again and retry",
            path=path,
        )


class StaleWorkspace(Conflict):
    """A workspace was not at the project's latest version, so its files were not saved.

    Another process saved a newer version meanwhile; the workspace has been refreshed
    from that version and the turn can be sent again.
    """

    code = "stale_workspace"

    def __init__(self, project_id: object, base: int, latest: int) -> None:
        super().__init__(
            f"project {project_id} changed elsewhere (version {latest}) while this workspace "
            f"held version {base}; its files were not saved and it was refreshed, "
            "send the message again",
            base_version=base,
            latest_version=latest,
        )


class LimitExceeded(BuilderError):
    """A configured limit would be exceeded."""

    code = "limit_exceeded"
    size: int
    limit: int


class FileTooLarge(LimitExceeded):
    """One write is larger than the per-write byte limit."""

    code = "file_too_large"
    path: str

    def __init__(self, path: str, size: int, limit: int) -> None:
        super().__init__(
            f"{path} is {_human_bytes(size)} ({size} bytes); the limit per write is "
            f"{_human_bytes(limit)} ({limit} bytes)",
            path=path,
            size=size,
            limit=limit,
        )


class QuotaExceeded(LimitExceeded):
    """The project would grow beyond its storage quota."""

    code = "quota_exceeded"

    def __init__(self, size: int, limit: int, path: str | None = None) -> None:
        where = f"writing {path} would bring" if path else "this would bring"
        super().__init__(
            f"{where} the project to {_human_bytes(size)} ({size} bytes); the project quota "
            f"is {_human_bytes(limit)} ({limit} bytes)",
            size=size,
            limit=limit,
            path=path,
        )


class ImageTooLarge(LimitExceeded):
    """An image attached to a chat turn is larger than the per-image byte limit."""

    code = "image_too_large"
    index: int

    def __init__(self, index: int, size: int, limit: int) -> None:
        super().__init__(
            f"image {index + 1} is {_human_bytes(size)} ({size} bytes); the limit per image "
            f"is {_human_bytes(limit)} ({limit} bytes, BUILDER_MAX_IMAGE_BYTES)",
            index=index,
            size=size,
            limit=limit,
        )


class RequestTooLarge(LimitExceeded):
    """A request body is larger than allowed."""

    code = "request_too_large"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"request body of {size} bytes exceeds the limit of {limit} bytes",
            size=size,
            limit=limit,
        )


class OperationTimeout(BuilderError):
    """An operation ran past its time budget and was cancelled."""

    code = "operation_timeout"
    operation: str
    seconds: float

    def __init__(self, operation: str, seconds: float, message: str | None = None) -> None:
        super().__init__(
            message or f"{operation} operation timed out after {seconds:g} s",
            operation=operation,
            seconds=seconds,
        )


class LockTimeout(OperationTimeout):
    """A lock could not be acquired in time."""

    code = "lock_timeout"
    key: str

    def __init__(self, key: str, seconds: float) -> None:
        BuilderError.__init__(
            self,
            f"could not acquire lock {key!r} within {seconds:g} s",
            operation="lock",
            seconds=seconds,
            key=key,
        )


class Unauthorized(BuilderError):
    """No valid credentials were presented."""

    code = "unauthorized"

    def default_message(self) -> str:
        return "a valid API key is required"


class Forbidden(BuilderError):
    """The caller is known but not allowed to do this."""

    code = "forbidden"


class RateLimited(BuilderError):
    """Too many requests; retry after ``retry_after`` seconds."""

    code = "rate_limited"
    retry_after: int
    limit: str

    def __init__(self, retry_after: int, limit: str) -> None:
        super().__init__(
            f"rate limit {limit} exceeded; retry in {retry_after} s",
            retry_after=retry_after,
            limit=limit,
        )


class DependencyUnavailable(BuilderError):
    """A service builder needs (database, Redis, browser, sandbox, model) is unavailable."""

    code = "dependency_unavailable"
    dependency: str

    def __init__(self, dependency: str, message: str | None = None) -> None:
        super().__init__(message or f"{dependency} is unavailable", dependency=dependency)


class ProviderError(DependencyUnavailable):
    """The model provider answered with an error, or could not be reached.

    ``status_code`` is the provider's HTTP status (None for a network failure).
    """

    code = "provider_error"
    status_code: int | None
    provider: str | None

    def __init__(
        self, message: str, *, status_code: int | None = None, provider: str | None = None
    ) -> None:
        BuilderError.__init__(
            self, message, dependency="model", status_code=status_code, provider=provider
        )


class PublishFailed(BuilderError):
    """A git push or a deploy to a host failed; the message says which step and why.

    The message never holds a credential: publishers redact them before raising.
    """

    code = "publish_failed"
    publisher: str
    step: str

    def __init__(self, publisher: str, step: str, message: str) -> None:
        super().__init__(f"{publisher}: {message}", publisher=publisher, step=step)


class DecryptionFailed(BuilderError):
    """Ciphertext could not be authenticated: wrong key, tampered, or wrong owner."""

    code = "decryption_failed"
    key_id: str | None

    def __init__(self, key_id: str | None, message: str | None = None) -> None:
        super().__init__(
            message or "ciphertext failed authentication (wrong key, tampered, or wrong owner)",
            key_id=key_id,
        )
