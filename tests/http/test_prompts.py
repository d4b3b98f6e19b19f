"""Prompt helpers over HTTP (answered by the scripted model's tasks)."""

from __future__ import annotations

from tests.http.server import ServerProcess


def test_improve_prompt_and_generate_title(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("prompts")) as client:
        improved = client.post("/api/improve-prompt", json={"prompt": "a bakery site"})
        title = client.post("/api/generate-title", json={"prompt": "a bakery site"})
    assert improved.status_code == 200
    assert improved.json()["prompt"].startswith("Build a small static website for Harbor Lane")
    assert title.json() == {"title": "Harbor Lane Bakery website"}


def test_prompt_length_is_checked(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("prompts-bad")) as client:
        too_long = client.post("/api/generate-title", json={"prompt": "x" * 4001})
        blank = client.post("/api/generate-title", json={"prompt": "   "})
        extra = client.post("/api/improve-prompt", json={"prompt": "x", "model": "other"})
    assert too_long.status_code == 422 and too_long.json()["error"]["code"] == "validation_error"
    assert blank.status_code == 422 and blank.json()["error"]["code"] == "invalid_input"
    assert extra.status_code == 422
