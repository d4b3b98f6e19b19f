"""builder: a framework and service for AI web-builder agents.

The public API is re-exported here; everything else is internal and may change.
"""

from __future__ import annotations

from builder._version import __version__
from builder.cache import Cache
from builder.crypto import Keyring, generate_key
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
from builder.graphs import (
    RunContext,
    SweepResult,
    TTLCheckpointer,
    WebBuilderState,
    build_web_builder_graph,
)
from builder.hookspecs import hookimpl
from builder.http import create_app
from builder.locks import LockManager
from builder.log import bind_context, configure_logging, get_logger
from builder.models import (
    ScriptedChatModel,
    generate_title,
    improve_prompt,
    invoke_model,
    load_chat_model,
)
from builder.persistence import Database, upgrade_database
from builder.plugins import get_tool_registry, load_plugins
from builder.retry import db_retry, provider_retry
from builder.runs import RunEvent, RunHandle, RunResult, RunService
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
from builder.settings import McpServer, Settings, get_settings
from builder.timeouts import with_timeout
from builder.tools import (
    Tool,
    ToolContext,
    ToolEffects,
    ToolRegistry,
    register_mcp_tools,
    tool_from_langchain,
)

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
