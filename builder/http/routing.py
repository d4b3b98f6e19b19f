"""Routes whose dependency tree is planned once, when the route is built.

FastAPI solves a route's dependencies anew on every request: for each node of the
tree it looks up overrides, builds a cache key, inspects the callable and reads every
kind of parameter, then wraps the call in two exit stacks and an exception wrapper.
For the API's usual route (the rate limit, the caller, the database, the owned
project) that generic work costs more than the route itself.

:class:`PlannedRoute` is an :class:`~fastapi.routing.APIRoute` that, when its tree is
*simple* — every dependency and the endpoint an ``async def`` that is not a generator,
taking only the request, path parameters and other dependencies — records the order of
the calls once and replays it per request, each dependency called once per request as
FastAPI does (its per-request cache). Everything else is FastAPI's own handling, which
the route falls back to:

* while ``app.dependency_overrides`` is not empty (so overrides behave exactly as
  FastAPI documents, through the whole tree);
* when a path parameter is invalid (checked before anything is called, so the 422
  is FastAPI's own, and no dependency runs twice);
* for any route whose tree is not simple (bodies, query parameters, generators, ...).

The response is serialized by FastAPI's own :func:`fastapi.routing.serialize_response`
with the route's response model, as FastAPI does.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, serialize_response
from fastapi.utils import is_body_allowed_for_status_code
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

__all__ = ["PlannedRoute"]


@dataclass(frozen=True, slots=True)
class _Step:
    """One dependency call: what it is called with, and where its result goes."""

    call: Callable[..., Awaitable[Any]]
    request_name: str | None
    path_names: tuple[str, ...]
    """Path parameters it takes (validated values, by parameter name)."""
    inputs: tuple[tuple[str, int], ...]
    """Sub-dependencies it takes: parameter name, index of the step that computes it."""


@dataclass(frozen=True, slots=True)
class _Plan:
    steps: tuple[_Step, ...]
    """Every dependency, each once, sub-dependencies first; the endpoint last."""


def _simple(dependant: Dependant) -> bool:
    """Whether this node and everything under it can be replayed from a plan."""
    call = dependant.call
    if call is None or not inspect.iscoroutinefunction(call):
        return False
    if (
        dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
        or dependant.own_oauth_scopes
        or dependant.parent_oauth_scopes
        or dependant.concurrency is not None
        or not dependant.use_cache
    ):
        return False
    return all(_simple(sub) for sub in dependant.dependencies)


def _plan(dependant: Dependant) -> _Plan | None:
    """The calls of a simple tree in FastAPI's order, each dependency once; else None."""
    if not _simple(dependant):
        return None
    steps: list[_Step] = []
    index_of: dict[Any, int] = {}

    def add(node: Dependant) -> int:
        inputs: list[tuple[str, int]] = []
        for sub in node.dependencies:
            assert sub.call is not None
            position = index_of.get(sub.call)
            if position is None:
                position = index_of[sub.call] = add(sub)
            if sub.name is not None:
                inputs.append((sub.name, position))
        assert node.call is not None
        steps.append(
            _Step(
                call=node.call,
                request_name=node.request_param_name,
                path_names=tuple(field.name for field in node.path_params),
                inputs=tuple(inputs),
            )
        )
        return len(steps) - 1

    add(dependant)
    return _Plan(tuple(steps))


class PlannedRoute(APIRoute):
    """An ``APIRoute`` that replays a planned dependency tree (see the module)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        plan = _plan(self.dependant)
        serializable = (
            not self.body_field
            and not getattr(self, "is_json_stream", False)
            and getattr(self, "stream_item_field", None) is None
            and not inspect.isasyncgenfunction(endpoint)
        )
        if plan is None or not serializable:
            return
        self._plan = plan
        self._generic = self.app
        self._path_fields = _all_path_fields(self.dependant)
        self._default_response = isinstance(self.response_class, DefaultPlaceholder)
        response_class = self.response_class
        if isinstance(response_class, DefaultPlaceholder):
            response_class = response_class.value
        self._response_class: type[Response] = response_class
        self.app = self._planned

    async def _planned(self, scope: Scope, receive: Receive, send: Send) -> None:
        provider = self.dependency_overrides_provider
        if provider is not None and getattr(provider, "dependency_overrides", None):
            await self._generic(scope, receive, send)
            return
        path_values: dict[str, Any] = {}
        received = scope["path_params"]
        for field in self._path_fields:
            value, errors = field.validate(received.get(field.alias), path_values)
            if errors:
                await self._generic(scope, receive, send)  # FastAPI's own 422
                return
            path_values[field.name] = value
        request = Request(scope, receive, send)
        results: list[Any] = []
        for step in self._plan.steps:
            arguments = {name: results[position] for name, position in step.inputs}
            for name in step.path_names:
                arguments[name] = path_values[name]
            if step.request_name is not None:
                arguments[step.request_name] = request
            results.append(await step.call(**arguments))
        response = await self._respond(results[-1])
        await response(scope, receive, send)

    async def _respond(self, raw: Any) -> Response:
        """The endpoint's result as FastAPI would answer it."""
        if isinstance(raw, Response):
            return raw
        dump_json = self.response_field is not None and self._default_response
        content = await serialize_response(
            field=self.response_field,
            response_content=raw,
            include=self.response_model_include,
            exclude=self.response_model_exclude,
            by_alias=self.response_model_by_alias,
            exclude_unset=self.response_model_exclude_unset,
            exclude_defaults=self.response_model_exclude_defaults,
            exclude_none=self.response_model_exclude_none,
            dump_json=dump_json,
        )
        arguments: dict[str, Any] = {}
        if self.status_code is not None:
            arguments["status_code"] = self.status_code
        if dump_json:
            response = Response(content=content, media_type="application/json", **arguments)
        else:
            response = self._response_class(content, **arguments)
        if not is_body_allowed_for_status_code(response.status_code):
            response.body = b""
        return response


def _all_path_fields(dependant: Dependant) -> list[Any]:
    """Every path parameter the tree reads, each name once."""
    fields: dict[str, Any] = {}

    def visit(node: Dependant) -> None:
        for sub in node.dependencies:
            visit(sub)
        for field in node.path_params:
            fields.setdefault(field.name, field)

    visit(dependant)
    return list(fields.values())
