"""``GET /ok`` and ``GET /info``: what LangGraph clients call before anything else.

agent-chat-ui and LangGraph Studio call ``/info`` to tell whether a URL is a LangGraph
server at all (a 404 is "Failed to connect"); ``/ok`` is the official server's
liveness probe. The bodies have the official server's shape: ``flags`` says which
optional parts of the protocol exist (assistants are served read-only; there are no
crons and no LangSmith tracing), ``host.kind`` says the server is self-hosted.

Both answer only an authenticated caller, like every other LangGraph route (a client
such as agent-chat-ui sends its ``x-api-key`` on these calls too).
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from fastapi import APIRouter

from builder._version import __version__
from builder.http.errors import ERROR_RESPONSES

__all__ = ["router"]

router = APIRouter(tags=["langgraph: server"], responses=ERROR_RESPONSES)


def _langgraph_version() -> str | None:
    try:
        return metadata.version("langgraph")
    except metadata.PackageNotFoundError:  # pragma: no cover - langgraph is a dependency
        return None


@router.get("/ok", summary="LangGraph liveness")
async def ok() -> dict[str, bool]:
    """The server is up."""
    return {"ok": True}


@router.get("/info", summary="LangGraph server information")
async def info() -> dict[str, Any]:
    """The server's version, the protocol features it serves and where it runs."""
    return {
        "version": __version__,
        "langgraph_py_version": _langgraph_version(),
        "flags": {
            "assistants": True,
            "crons": False,
            "langsmith": False,
            "langsmith_tracing_replicas": False,
        },
        "host": {
            "kind": "self-hosted",
            "project_id": None,
            "host_revision_id": None,
            "revision_id": None,
            "tenant_id": None,
        },
    }
