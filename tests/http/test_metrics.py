"""Prometheus metrics: by route template, runs in progress, tools, protected by token."""

from __future__ import annotations

import uuid

from prometheus_client.parser import text_string_to_metric_families

from tests.http.server import ServerProcess


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_requests_are_counted_by_route_template_not_raw_path(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("metrics")) as client:
        for _ in range(3):
            client.get(f"/api/projects/{uuid.uuid4()}")
        client.get(f"/not/a/route/{uuid.uuid4()}")
        samples = _samples(client.get("/metrics").text)
    route = "/api/projects/{project_id}"
    key = (
        "builder_http_requests_total",
        frozenset({("method", "GET"), ("route", route), ("status", "404")}),
    )
    assert samples[key] >= 3
    routes = {
        dict(labels).get("route")
        for name, labels in samples
        if name == "builder_http_requests_total"
    }
    assert all(
        "{" in r
        or r
        in {
            "unmatched",
            "/metrics",
            "/api/health",
            "/api/projects",
            "/api/integrations",
            "/openapi.json",
            "/docs",
            "/api/health/ready",
            "/api/improve-prompt",
            "/api/generate-title",
        }
        for r in routes
        if r
    )
    assert not any(str(uuid_part) in "".join(map(str, routes)) for uuid_part in ("-4",))
    histogram = (
        "builder_http_request_duration_seconds_count",
        frozenset({("method", "GET"), ("route", route)}),
    )
    assert samples[histogram] >= 3


def test_runs_and_tool_calls_are_measured(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("metrics-run")) as client:
        pid = client.post("/api/projects", json={"name": "m"}).json()["id"]
        before = _samples(client.get("/metrics").text)
        assert (
            client.post(f"/api/projects/{pid}/chat/wait", json={"prompt": "go"}).json()["status"]
            == "success"
        )
        after = _samples(client.get("/metrics").text)
    write = ("builder_tool_calls_total", frozenset({("tool", "write_file"), ("ok", "true")}))
    assert after[write] > before.get(write, 0)
    duration = ("builder_tool_duration_seconds_count", frozenset({("tool", "write_file")}))
    assert after[duration] > before.get(duration, 0)
    assert after[("builder_runs_in_progress", frozenset())] == 0


def test_a_metrics_token_guards_the_endpoint(prod_server: ServerProcess) -> None:
    # The production server has no token configured: /metrics is open (documented).
    with prod_server.client() as client:
        assert client.get("/metrics").status_code == 200
