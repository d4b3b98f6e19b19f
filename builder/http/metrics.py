"""Prometheus metrics at ``/metrics``.

* ``builder_http_requests_total{method, route, status}`` and
  ``builder_http_request_duration_seconds{method, route}``: by route *template*
  (``/api/projects/{project_id}``), never the raw path, so the series stay few;
  paths that match no route are counted as ``route="unmatched"``.
* ``builder_runs_in_progress``: agent runs this process is executing.
* ``builder_tool_calls_total{tool, ok}`` and ``builder_tool_duration_seconds{tool}``:
  from each run's ``tool_end`` events.
* ``builder_rate_limited_total{tier}``: requests refused with 429.
* ``builder_preview_requests_total{target}``: preview requests (HTTP and WebSocket)
  with a valid link, by where they went: ``local`` (a dev server of this replica),
  ``forwarded`` (to the replica that runs it) or ``misdirected`` (421).

Each app has its own registry. With several uvicorn workers (``builder serve
--workers N``), ``PROMETHEUS_MULTIPROC_DIR`` is set to a fresh directory before the
workers start and ``/metrics`` sums every worker's values (prometheus-client's
multiprocess mode; the in-progress gauge counts live workers only). When
``BUILDER_METRICS_TOKEN`` is set, ``/metrics`` answers only to
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
import hmac
import os

from fastapi import APIRouter, Request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.responses import Response

from builder.errors import Unauthorized
from builder.runs.service import RunHandle

__all__ = ["Metrics", "metrics_router"]

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_TOOL_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """The service's metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = _MULTIPROC_ENV in os.environ
        self.requests = Counter(
            "builder_http_requests_total",
            "HTTP requests answered.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "builder_http_request_duration_seconds",
            "Seconds from receiving a request to the end of its answer.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.runs_in_progress = Gauge(
            "builder_runs_in_progress",
            "Agent runs in progress in this process.",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.tool_calls = Counter(
            "builder_tool_calls_total",
            "Tool calls finished, by tool and outcome.",
            ["tool", "ok"],
            registry=self.registry,
        )
        self.tool_duration = Histogram(
            "builder_tool_duration_seconds",
            "Seconds one tool call took.",
            ["tool"],
            buckets=_TOOL_BUCKETS,
            registry=self.registry,
        )
        self.rate_limited_total = Counter(
            "builder_rate_limited_total",
            "Requests refused by a rate limit.",
            ["tier"],
            registry=self.registry,
        )

        # Label children bound once per (method, route, status): routes are templates,
        # so these stay few, and a request then costs two plain updates.
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.preview_requests = Counter(
            "builder_preview_requests_total",
            "Preview requests with a valid link, by where they went.",
            ["target"],
            registry=self.registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count and time one answered request (by route template, never the raw path)."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(method=method, route=route, status=str(status)),
                self.latency.labels(method=method, route=route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def rate_limited(self, tier: str) -> None:
        """Count a 429."""
        self.rate_limited_total.labels(tier=tier).inc()

    async def observe_run(self, handle: RunHandle) -> None:
        """Follow a run's events until it ends: in-progress gauge and tool metrics."""
        self.runs_in_progress.inc()
        try:
            async for event in handle.events():
                if event.type == "tool_end":
                    tool = str(event.data.get("tool", "unknown"))
                    ok = "true" if event.data.get("ok") else "false"
                    self.tool_calls.labels(tool=tool, ok=ok).inc()
                    seconds = float(event.data.get("duration_ms", 0)) / 1000
                    self.tool_duration.labels(tool=tool).observe(seconds)
        finally:
            self.runs_in_progress.dec()

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format (every worker's, in multiprocess mode)."""
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


def metrics_router() -> APIRouter:
    """``GET /metrics``."""
    router = APIRouter(include_in_schema=False)

    @router.get("/metrics")
    async def metrics(request: Request) -> Response:
        services = request.app.state.services
        token = services.settings.metrics_token
        if token is not None:
            presented = request.headers.get("authorization", "")
            expected = f"Bearer {token.get_secret_value()}"
            if not hmac.compare_digest(presented.encode(), expected.encode()):
                raise Unauthorized("a valid metrics token is required")
        body = await asyncio.to_thread(services.metrics.exposition)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router
