"""Chat over HTTP: events as SSE, the awaited result, one run per project at a time."""

from __future__ import annotations

import base64
import hashlib
import time

from builder.runs.events import EVENT_TYPES
from tests.http.conftest import IMAGE_LIMIT
from tests.http.server import ServerProcess
from tests.http.sse import read_events


def test_a_turn_streams_every_event_in_order(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("chat-sse")) as client:
        pid = client.post("/api/projects", json={"name": "c"}).json()["id"]
        with client.stream("POST", f"/api/projects/{pid}/chat", json={"prompt": "a bakery"}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            run_id = r.headers["x-run-id"]
            events = list(read_events(r))
    assert [e.id for e in events] == [str(i) for i in range(len(events))]
    assert all(e.event == e.data["type"] and e.event in EVENT_TYPES for e in events)
    assert [e.event for e in events[:2]] == ["queued", "run_started"]
    assert events[0].data["run_id"] == events[1].data["run_id"] == run_id
    finished = events[-1]
    assert finished.event == "run_finished"
    assert (finished.data["status"], finished.data["project_id"]) == ("success", pid)
    assert {"tool_start", "tool_end", "file_changed", "snapshot"} <= {e.event for e in events}
    tool_end = next(e for e in events if e.event == "tool_end")
    assert {"tool", "ok", "duration_ms"} <= set(tool_end.data)


def test_the_awaited_variant_answers_with_the_result(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("chat-wait")) as client:
        pid = client.post("/api/projects", json={"name": "c"}).json()["id"]
        result = client.post(f"/api/projects/{pid}/chat/wait", json={"prompt": "a bakery"}).json()
        assert result["status"] == "success" and result["project_id"] == pid
        assert "index.html" in result["files_created"]
        assert result["snapshot_version"] >= 1
        messages = client.get(f"/api/projects/{pid}/messages").json()["items"]
        assert [m["role"] for m in messages] == ["user", "assistant"]


def test_a_second_chat_on_a_busy_project_is_refused_or_queued(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("chat-busy")) as client:
        pid = client.post("/api/projects", json={"name": "c"}).json()["id"]
        with client.stream("POST", f"/api/projects/{pid}/chat", json={"prompt": "one"}) as first:
            assert first.status_code == 200
            first_reader = read_events(first)
            first_events = []
            for event in first_reader:  # until the run is surely at work
                first_events.append(event)
                if event.event == "tool_start":
                    break
            refused = client.post(f"/api/projects/{pid}/chat", json={"prompt": "two"})
            assert refused.status_code == 409
            assert refused.json()["error"]["code"] == "run_in_progress"
            with client.stream(
                "POST",
                f"/api/projects/{pid}/chat",
                json={"prompt": "three", "multitask": "enqueue"},
            ) as queued:
                assert queued.status_code == 200
                queued_events = list(read_events(queued))
            first_events.extend(first_reader)
        assert first_events[-1].data["status"] == "success"
        assert queued_events[-1].data["status"] == "success"
        # While it waited (if the first had not ended yet), its stream said where it
        # stood in the queue; then it ran (tests/http/langgraph/test_runs.py waits
        # behind a slow run for sure).
        assert [e.id for e in queued_events] == [str(i) for i in range(len(queued_events))]
        assert queued_events[0].event == "queued" and "position" not in queued_events[0].data
        started = next(i for i, e in enumerate(queued_events) if e.event == "run_started")
        assert [(e.event, e.data["position"]) for e in queued_events[1:started]] in (
            [],
            [("queued", 1)],
        )
        # The queued run started only after the first one finished.
        assert queued_events[started].data["at"] >= first_events[-1].data["at"]
        assert [e.event for e in first_events].count("queued") == 1  # it never waited
        contents = [
            m["content"]
            for m in client.get(f"/api/projects/{pid}/messages").json()["items"]
            if m["role"] == "user"
        ]
        assert contents == ["one", "three"]


def test_a_client_that_disconnects_does_not_stop_the_run(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("chat-gone")) as client:
        pid = client.post("/api/projects", json={"name": "c"}).json()["id"]
        with client.stream("POST", f"/api/projects/{pid}/chat", json={"prompt": "go"}) as r:
            first = next(read_events(r))
            assert first.event == "queued"
        # The stream is closed; the run goes on and persists its reply.
        for _ in range(300):
            roles = [m["role"] for m in client.get(f"/api/projects/{pid}/messages").json()["items"]]
            if "assistant" in roles:
                break
            time.sleep(0.1)
        assert roles == ["user", "assistant"]
        assert client.get(f"/api/projects/{pid}/files").json()["version"] >= 1


def test_an_empty_prompt_or_unknown_field_is_refused(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("chat-bad")) as client:
        pid = client.post("/api/projects", json={"name": "c"}).json()["id"]
        for body in (
            {"prompt": ""},
            {"prompt": "x", "run_id": "mine"},
            {"prompt": "x", "multitask": "fork"},
        ):
            assert client.post(f"/api/projects/{pid}/chat", json=body).status_code == 422
        blank = client.post(f"/api/projects/{pid}/chat/wait", json={"prompt": "   "})
        assert blank.status_code == 422 and blank.json()["error"]["code"] == "invalid_input"


def test_a_runs_status_says_where_it_stands(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("chat-status")) as client:
        pid = client.post("/api/projects", json={"name": "c"}).json()["id"]
        result = client.post(f"/api/projects/{pid}/chat/wait", json={"prompt": "a bakery"}).json()
        status = client.get(f"/api/projects/{pid}/chat/{result['run_id']}")
        assert status.json() == {
            "run_id": result["run_id"],
            "project_id": pid,
            "status": "success",
            "position": None,
        }


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64


def _image(media_type: str, data: bytes) -> dict[str, str]:
    return {"media_type": media_type, "data": base64.b64encode(data).decode()}


def test_images_go_with_the_turn_and_are_kept_with_the_message(
    dev_server: ServerProcess,
) -> None:
    with dev_server.client(dev_server.new_key("chat-images")) as client:
        pid = client.post("/api/projects", json={"name": "c"}).json()["id"]
        body = {
            "prompt": "like this sketch",
            "images": [_image("image/png", PNG), _image("image/jpeg", JPEG)],
        }
        result = client.post(f"/api/projects/{pid}/chat/wait", json=body).json()
        assert result["status"] == "success", result
        user = client.get(f"/api/projects/{pid}/messages").json()["items"][0]
    assert user["content"] == "like this sketch"
    assert user["parts"] == [
        {
            "type": "image",
            "media_type": media_type,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
        }
        for media_type, data in (("image/png", PNG), ("image/jpeg", JPEG))
    ]


def test_bad_images_are_refused_with_what_is_wrong(dev_server: ServerProcess) -> None:
    with dev_server.client(dev_server.new_key("chat-bad-images")) as client:
        pid = client.post("/api/projects", json={"name": "c"}).json()["id"]

        def chat(*images: dict[str, str]) -> tuple[int, str, str]:
            answer = client.post(
                f"/api/projects/{pid}/chat", json={"prompt": "look", "images": list(images)}
            )
            error = answer.json()["error"]
            return answer.status_code, error["code"], error["message"]

        too_large = PNG + b"\x00" * IMAGE_LIMIT
        assert chat(_image("image/png", PNG), _image("image/png", too_large)) == (
            413,
            "image_too_large",
            f"image 2 is 4.1 KiB ({len(too_large)} bytes); the limit per image is 4.0 KiB "
            f"({IMAGE_LIMIT} bytes, BUILDER_MAX_IMAGE_BYTES)",
        )
        assert chat(_image("image/bmp", b"BM\x00\x00")) == (
            422,
            "invalid_image",
            "image 1: type 'image/bmp' is not accepted; use one of image/png, image/jpeg, "
            "image/webp, image/gif",
        )
        assert chat({"media_type": "image/png", "data": "not base64!"}) == (
            422,
            "invalid_image",
            "image 1: its data is not valid base64",
        )
        assert chat(_image("image/png", JPEG)) == (
            422,
            "invalid_image",
            "image 1: declared image/png but its bytes are a JPEG image",
        )
        assert chat(*[_image("image/png", PNG)] * 5) == (
            422,
            "invalid_image",
            "a turn may carry at most 4 images, not 5",
        )
        unknown = client.post(
            f"/api/projects/{pid}/chat",
            json={"prompt": "look", "images": [{**_image("image/png", PNG), "url": "x"}]},
        )
        assert unknown.status_code == 422
        # Nothing was stored or run for a refused turn.
        assert client.get(f"/api/projects/{pid}/messages").json()["items"] == []
