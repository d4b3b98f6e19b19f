"""builder: a framework and service for AI web-builder agents.

The public API is re-exported here; everything else is internal and may change. It is
imported on first use: ``import builder`` loads the errors and the version only, so a
command, a plugin or an app that needs one part does not pay for LangGraph, the HTTP
stack, the database drivers and the sandbox SDKs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from builder._version import __version__
from builder.errors import (
    AlreadyExists,
    BuilderError,
    ConcurrentModification,
    ConfigurationError,
    Conflict,
    DecryptionFailed,
    DependencyUnavailable,
    DuplicateTool,
    FileTooLarge,
    Forbidden,
    InvalidInput,
    InvalidTool,
    LimitExceeded,
    LockTimeout,
    NotFound,
    OperationTimeout,
    PathOutsideSandbox,
    ProviderError,
    QuotaExceeded,
    RateLimited,
    RequestTooLarge,
    RunInProgress,
    SearchTextNotFound,
    SearchTextNotUnique,
    StaleWorkspace,
    Unauthorized,
    UnsafeProductionSettings,
)

if TYPE_CHECKING:
    from builder.cache import Cache
    from builder.crypto import (
        Keyring,
        generate_key,
    )
    from builder.graphs import (
        RunContext,
        SweepResult,
        TTLCheckpointer,
        WebBuilderState,
        build_web_builder_graph,
    )
    from builder.hookspecs import hookimpl
    from builder.http import create_app
    from builder.images import Image
    from builder.locks import LockManager
    from builder.log import (
        bind_context,
        configure_logging,
        get_logger,
    )
    from builder.models import (
        ScriptedChatModel,
        generate_title,
        improve_prompt,
        invoke_model,
        load_chat_model,
    )
    from builder.persistence import (
        Database,
        upgrade_database,
    )
    from builder.plugins import (
        get_tool_registry,
        load_plugins,
    )
    from builder.retry import (
        db_retry,
        provider_retry,
    )
    from builder.runs import (
        RunEvent,
        RunHandle,
        RunResult,
        RunService,
    )
    from builder.sandbox import (
        CommandResult,
        E2BSandbox,
        FileInfo,
        LocalSandbox,
        ProcessInfo,
        Sandbox,
        SandboxPool,
        create_sandbox,
    )
    from builder.settings import (
        McpServer,
        Settings,
        get_settings,
    )
    from builder.timeouts import with_timeout
    from builder.tools import (
        Tool,
        ToolContext,
        ToolEffects,
        ToolRegistry,
        WithImages,
        register_mcp_tools,
        tool_from_langchain,
    )

_LAZY = {
    "Cache": "builder.cache",
    "CommandResult": "builder.sandbox",
    "Database": "builder.persistence",
    "E2BSandbox": "builder.sandbox",
    "FileInfo": "builder.sandbox",
    "Image": "builder.images",
    "Keyring": "builder.crypto",
    "LocalSandbox": "builder.sandbox",
    "LockManager": "builder.locks",
    "McpServer": "builder.settings",
    "ProcessInfo": "builder.sandbox",
    "RunContext": "builder.graphs",
    "RunEvent": "builder.runs",
    "RunHandle": "builder.runs",
    "RunResult": "builder.runs",
    "RunService": "builder.runs",
    "Sandbox": "builder.sandbox",
    "SandboxPool": "builder.sandbox",
    "ScriptedChatModel": "builder.models",
    "Settings": "builder.settings",
    "SweepResult": "builder.graphs",
    "TTLCheckpointer": "builder.graphs",
    "Tool": "builder.tools",
    "ToolContext": "builder.tools",
    "ToolEffects": "builder.tools",
    "ToolRegistry": "builder.tools",
    "WebBuilderState": "builder.graphs",
    "WithImages": "builder.tools",
    "bind_context": "builder.log",
    "build_web_builder_graph": "builder.graphs",
    "configure_logging": "builder.log",
    "create_app": "builder.http",
    "create_sandbox": "builder.sandbox",
    "db_retry": "builder.retry",
    "generate_key": "builder.crypto",
    "generate_title": "builder.models",
    "get_logger": "builder.log",
    "get_settings": "builder.settings",
    "get_tool_registry": "builder.plugins",
    "hookimpl": "builder.hookspecs",
    "improve_prompt": "builder.models",
    "invoke_model": "builder.models",
    "load_chat_model": "builder.models",
    "load_plugins": "builder.plugins",
    "provider_retry": "builder.retry",
    "register_mcp_tools": "builder.tools",
    "tool_from_langchain": "builder.tools",
    "upgrade_database": "builder.persistence",
    "with_timeout": "builder.timeouts",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'builder' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AlreadyExists",
    "BuilderError",
    "Cache",
    "CommandResult",
    "ConcurrentModification",
    "ConfigurationError",
    "Conflict",
    "Database",
    "DecryptionFailed",
    "DependencyUnavailable",
    "DuplicateTool",
    "E2BSandbox",
    "FileInfo",
    "FileTooLarge",
    "Forbidden",
    "Image",
    "InvalidInput",
    "InvalidTool",
    "Keyring",
    "LimitExceeded",
    "LocalSandbox",
    "LockManager",
    "LockTimeout",
    "McpServer",
    "NotFound",
    "OperationTimeout",
    "PathOutsideSandbox",
    "ProcessInfo",
    "ProviderError",
    "QuotaExceeded",
    "RateLimited",
    "RequestTooLarge",
    "RunContext",
    "RunEvent",
    "RunHandle",
    "RunInProgress",
    "RunResult",
    "RunService",
    "Sandbox",
    "SandboxPool",
    "ScriptedChatModel",
    "SearchTextNotFound",
    "SearchTextNotUnique",
    "Settings",
    "StaleWorkspace",
    "SweepResult",
    "TTLCheckpointer",
    "Tool",
    "ToolContext",
    "ToolEffects",
    "ToolRegistry",
    "Unauthorized",
    "UnsafeProductionSettings",
    "WebBuilderState",
    "WithImages",
    "__version__",
    "bind_context",
    "build_web_builder_graph",
    "configure_logging",
    "create_app",
    "create_sandbox",
    "db_retry",
    "generate_key",
    "generate_title",
    "get_logger",
    "get_settings",
    "get_tool_registry",
    "hookimpl",
    "improve_prompt",
    "invoke_model",
    "load_chat_model",
    "load_plugins",
    "provider_retry",
    "register_mcp_tools",
    "tool_from_langchain",
    "upgrade_database",
    "with_timeout",
]
