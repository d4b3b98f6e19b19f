"""Prometheus metrics: by route template, runs in progress, tools, protected by token."""

from __future__ import annotations

import re
import uuid

from prometheus_client.parser import text_string_to_metric_families

from tests.http.server import ServerProcess

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")


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
        dict(labels)["route"] for name, labels in samples if name == "builder_http_requests_total"
    }
    assert "unmatched" in routes
    assert not any(_UUID.search(route) for route in routes)  # never a raw path
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


def test_metrics_are_open_without_a_token_even_in_production(prod_server: ServerProcess) -> None:
    with prod_server.client() as client:
        assert client.get("/metrics").status_code == 200
