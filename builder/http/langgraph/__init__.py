"""The LangGraph-compatible API: what the official ``langgraph-sdk`` and ``RemoteGraph`` call.

The official LangGraph server cannot be self-hosted as a service, so builder speaks
its protocol itself, for the web-builder graph:

* ``/ok``, ``/info`` (:mod:`~builder.http.langgraph.meta`): what clients probe first;
* ``/assistants…`` (:mod:`~builder.http.langgraph.assistants`): the graph, read-only;
* ``/threads…`` (:mod:`~builder.http.langgraph.threads`): a thread is a project;
* ``/threads/{id}/state…``, ``/history`` (:mod:`~builder.http.langgraph.state`);
* ``/threads/{id}/runs…``, ``/runs…`` (:mod:`~builder.http.langgraph.runs`): turns of
  the runs service, in the background, streamed (:mod:`~builder.http.langgraph.sse`)
  or awaited.

Authentication, rate limits (the chat tier for starting runs), request ids, metrics
and the error body are the rest of the service's. docs/api.md says what is supported
and what is not, and why.
"""

from __future__ import annotations

from fastapi import APIRouter

from builder.http.langgraph import assistants, meta, runs, state, threads

__all__ = ["ROUTERS"]

ROUTERS: tuple[APIRouter, ...] = (
    meta.router,
    assistants.router,
    threads.router,
    state.router,
    runs.create_router,
    runs.router,
)
"""Every router of the LangGraph-compatible API."""
