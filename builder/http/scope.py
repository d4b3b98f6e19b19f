"""Per-request values kept in the ASGI scope, shared by middleware and routes.

Everything a request accumulates on its way through the stack (its id, the caller,
response headers that components want added) lives in ``scope["state"]``, which is
also what ``request.state`` reads, so pure ASGI middleware and FastAPI dependencies see
the same values without a second lookup.
"""

from __future__ import annotations

from typing import Any

from starlette.types import Scope

__all__ = ["add_response_header", "request_id_of", "scope_state"]


def scope_state(scope: Scope) -> dict[str, Any]:
    """The request's mutable state (``request.state``), created on first use."""
    state: dict[str, Any] = scope.setdefault("state", {})
    return state


def request_id_of(scope: Scope) -> str:
    """The request id set by the request-id middleware (``"-"`` outside it)."""
    return str(scope_state(scope).get("request_id", "-"))


def add_response_header(scope: Scope, name: str, value: str) -> None:
    """Have ``name: value`` added to this request's response, whatever sends it."""
    headers: list[tuple[bytes, bytes]] = scope_state(scope).setdefault("response_headers", [])
    headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
