"""Sandboxes: the live workspaces where the agent's files live and commands run."""

from __future__ import annotations

from builder.sandbox.base import CommandResult, FileInfo, ProcessInfo, Sandbox
from builder.sandbox.e2b import E2BSandbox
from builder.sandbox.factory import create_sandbox
from builder.sandbox.local import LocalSandbox
from builder.sandbox.pool import SandboxPool

__all__ = [
    "CommandResult",
    "E2BSandbox",
    "FileInfo",
    "LocalSandbox",
    "ProcessInfo",
    "Sandbox",
    "SandboxPool",
    "create_sandbox",
]
