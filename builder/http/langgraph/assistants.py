"""Assistants: the graphs the server runs, read-only.

There is one, the web-builder graph (graph id ``web_builder``). Like the official
server, its assistant id is ``uuid5(NAMESPACE, graph_id)`` with the official server's
namespace, and the graph id itself is accepted wherever an assistant id is.
Assistants cannot be created, changed or deleted: the graph's configuration is the
server's (``BUILDER_*`` settings).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from builder.errors import NotFound
from builder.http.deps import ServicesDep
from builder.http.errors import ERROR_RESPONSES
from builder.http.langgraph.schemas import AssistantCountBody, AssistantSearchBody
from builder.http.ratelimit import rate_limited
from builder.runs.schema import state_schema

__all__ = ["ASSISTANTS", "GRAPH_ID", "Assistant", "resolve_assistant", "router"]

GRAPH_ID = "web_builder"
_NAMESPACE = uuid.UUID("6ba7b821-9dad-11d1-80b4-00c04fd430c8")
_STARTED = datetime.now(UTC)

router = APIRouter(
    prefix="/assistants",
    tags=["langgraph: assistants"],
    dependencies=[Depends(rate_limited("default"))],
    responses=ERROR_RESPONSES,
)


@dataclass(frozen=True, slots=True)
class Assistant:
    """A graph offered as an assistant."""

    graph_id: str
    description: str
    metadata: dict[str, Any] = field(default_factory=lambda: {"created_by": "system"})

    @property
    def assistant_id(self) -> str:
        """The stable id: the same on every server for the same graph id."""
        return str(uuid.uuid5(_NAMESPACE, self.graph_id))

    def as_json(self) -> dict[str, Any]:
        """The protocol's ``Assistant``."""
        return {
            "assistant_id": self.assistant_id,
            "graph_id": self.graph_id,
            "config": {},
            "context": {},
            "created_at": _STARTED.isoformat(),
            "updated_at": _STARTED.isoformat(),
            "metadata": dict(self.metadata),
            "version": 1,
            "name": self.graph_id,
            "description": self.description,
        }


ASSISTANTS = (
    Assistant(
        GRAPH_ID,
        "Builds and edits a web site in a sandbox: plans, writes files, runs commands "
        "and a dev server; every turn is saved as a version of the project.",
    ),
)


def resolve_assistant(reference: str) -> Assistant:
    """The assistant with this id or graph id.

    Raises:
        NotFound: No such assistant.
    """
    for assistant in ASSISTANTS:
        if reference in (assistant.assistant_id, assistant.graph_id):
            return assistant
    raise NotFound("assistant", reference)


def _matches(assistant: Assistant, body: AssistantCountBody | AssistantSearchBody) -> bool:
    if body.graph_id and body.graph_id != assistant.graph_id:
        return False
    if body.name and body.name.lower() not in assistant.graph_id.lower():
        return False
    metadata = body.metadata or {}
    return all(assistant.metadata.get(key) == value for key, value in metadata.items())


@router.post("/search")
async def search(body: AssistantSearchBody, response: Response) -> list[dict[str, Any]]:
    """Assistants matching a graph id, a name (substring) and metadata."""
    found = [a.as_json() for a in ASSISTANTS if _matches(a, body)]
    if body.sort_by:
        found.sort(key=lambda a: str(a[body.sort_by or ""]), reverse=body.sort_order == "desc")
    page = found[body.offset : body.offset + body.limit]
    if body.offset + body.limit < len(found):
        response.headers["x-pagination-next"] = str(body.offset + body.limit)
    if body.select:
        page = [{key: a[key] for key in body.select if key in a} for a in page]
    return page


@router.post("/count")
async def count(body: AssistantCountBody) -> int:
    """How many assistants match."""
    return sum(_matches(a, body) for a in ASSISTANTS)


@router.get("/{assistant_id}")
async def get(assistant_id: str) -> dict[str, Any]:
    """One assistant, by assistant id or graph id."""
    return resolve_assistant(assistant_id).as_json()


@router.get("/{assistant_id}/graph")
async def graph(
    assistant_id: str,
    services: ServicesDep,
    xray: Annotated[int | bool, Query(description="Include subgraphs (none here).")] = False,
) -> dict[str, Any]:
    """The graph's nodes and edges, as ``Graph.to_json()`` draws them."""
    resolve_assistant(assistant_id)
    return services.runs.graph_drawing(xray=xray)


@router.get("/{assistant_id}/schemas")
async def schemas(assistant_id: str) -> dict[str, Any]:
    """JSON schemas of the input the API accepts and of the state it returns."""
    assistant = resolve_assistant(assistant_id)
    state = state_schema()
    return {
        "graph_id": assistant.graph_id,
        "input_schema": _INPUT_SCHEMA,
        "output_schema": state,
        "state_schema": state,
        "config_schema": None,
        "context_schema": _CONTEXT_SCHEMA,
    }


@router.get("/{assistant_id}/subgraphs")
async def subgraphs(assistant_id: str) -> dict[str, Any]:
    """Subgraphs by namespace: the web-builder graph has none."""
    resolve_assistant(assistant_id)
    return {}


_INPUT_SCHEMA: dict[str, Any] = {
    "title": "Input",
    "type": "object",
    "properties": {
        "messages": {
            "title": "Messages",
            "description": "The user's message(s); they make one turn of the agent.",
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "role": {"type": "string", "enum": ["user", "human"]},
                    "content": {"anyOf": [{"type": "string"}, {"type": "array"}]},
                },
                "required": ["content"],
            },
        }
    },
    "required": ["messages"],
}
_CONTEXT_SCHEMA: dict[str, Any] = {
    "title": "Context",
    "type": "object",
    "properties": {
        "max_steps": {"type": "integer", "minimum": 1, "description": "Model calls this run."},
        "token_budget": {"type": "integer", "minimum": 1, "description": "Tokens this run."},
    },
}
