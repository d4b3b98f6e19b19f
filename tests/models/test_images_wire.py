"""Images reach the model in its provider's format, as the provider sees them.

A person's images go with their message to OpenAI as ``image_url`` data URLs and to
Anthropic as base64 ``image`` sources; they are stored with the message, so a context
rebuilt after it expired still shows them to the model. The agent's own screenshot of
its preview (real Chromium) comes back to Anthropic inside the tool result, and to
OpenAI, whose chat completions take images only from the user, in a user message
right after the tool results.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from builder.images import Image
from builder.persistence.database import Database
from builder.persistence.messages import list_messages
from builder.persistence.projects import create_project
from builder.persistence.users import get_or_create_user
from builder.runs.service import RunService
from builder.settings import Settings
from tests.http.origins import RecordingServer
from tests.models.anthropic_server import AnthropicServer, message
from tests.models.openai_server import OpenAIServer, completion

pytestmark = pytest.mark.slow

# A real 1x1 PNG and a real 1x1 GIF.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
SKETCH = "Make my home page look like this sketch"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
async def project_id(db: Database) -> uuid.UUID:
    user = await get_or_create_user(db, name="alice")
    return (await create_project(db, user_id=user.id, name="bakery")).id


async def _user_id(db: Database) -> uuid.UUID:
    return (await get_or_create_user(db, name="alice")).id


def _service(settings: Settings, db: Database, model: str, base_url: str) -> Any:
    chosen = Settings(
        data_dir=settings.data_dir,
        model=model,
        model_base_url=base_url,
        model_api_key="sk-test",
        model_retries=0,
        model_images=True,
    )
    return RunService.open(chosen, db=db, model=model)


async def _turn(service: RunService, db: Database, project_id: uuid.UUID, **kw: Any) -> Any:
    handle = await service.start(user_id=await _user_id(db), project_id=project_id, **kw)
    result = await handle.wait()
    assert result.status == "success", result.error
    return result


async def _expire(service: RunService, db: Database, project_id: uuid.UUID) -> None:
    async with db.transaction() as session:
        await session.execute(text("UPDATE threads SET expires_at = now() - interval '1 minute'"))
    assert (await service.checkpointer.sweep()).expired == [str(project_id)]


async def test_openai_receives_the_images_as_data_urls_even_after_the_context_expired(
    db: Database, settings: Settings, project_id: uuid.UUID
) -> None:
    with OpenAIServer(completion("I see the sketch.")) as provider:
        async with _service(settings, db, "openai:gpt-test", provider.base_url) as service:
            images = [Image("image/png", PNG), Image("image/gif", GIF)]
            await _turn(service, db, project_id, prompt=SKETCH, images=images)
            await _expire(service, db, project_id)
            await _turn(service, db, project_id, prompt="Now make it greener")
        first, second = provider.requests

    sent = {
        "role": "user",
        "content": [
            {"type": "text", "text": SKETCH},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{b64(PNG)}"}},
            {"type": "image_url", "image_url": {"url": f"data:image/gif;base64,{b64(GIF)}"}},
        ],
    }
    assert first["messages"][1] == sent
    # The context expired between the turns; rebuilt from the database, it still
    # shows the model the images of the first message.
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    assert second["messages"][1] == sent
    assert second["messages"][3] == {"role": "user", "content": "Now make it greener"}

    stored = (await list_messages(db, project_id=project_id)).items[0]
    assert stored.content == SKETCH
    assert stored.parts == [
        {
            "type": "image",
            "media_type": "image/png",
            "sha256": Image("image/png", PNG).sha256,
            "size": len(PNG),
        },
        {
            "type": "image",
            "media_type": "image/gif",
            "sha256": Image("image/gif", GIF).sha256,
            "size": len(GIF),
        },
    ]


async def test_anthropic_receives_the_images_as_base64_sources(
    db: Database, settings: Settings, project_id: uuid.UUID
) -> None:
    with AnthropicServer(message("I see the sketch.")) as provider:
        async with _service(settings, db, "anthropic:claude-test", provider.base_url) as service:
            await _turn(service, db, project_id, prompt=SKETCH, images=[Image("image/png", PNG)])
        (first,) = provider.requests

    assert first["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": SKETCH},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": b64(PNG)},
                },
            ],
        }
    ]


PAGE = '<!doctype html><title>Bakery</title><h1 style="color:green">Fresh bread</h1>'


@pytest.fixture
def tracker() -> AsyncIterator[RecordingServer]:
    """Another origin the page links to: the screenshot must never reach it."""
    server = RecordingServer()
    yield server  # type: ignore[misc]
    server.close()


def _page(tracker: RecordingServer) -> str:
    return PAGE + f'<img src="{tracker.url}/pixel.png" alt="">'


def _screenshot_script(kind: str, page: str) -> list[Any]:
    """Write the page, start a dev server, screenshot it, answer."""
    calls = [
        ("write_file", {"path": "index.html", "content": page}),
        ("start_dev_server", {"command": "python3 -m http.server {port}"}),
        ("screenshot_preview", {}),
    ]
    replies: list[Any] = []
    for n, (name, args) in enumerate(calls):
        if kind == "openai":
            replies.append(completion(tool_calls=[{"id": f"call_{n}", "name": name, "args": args}]))
        else:
            replies.append(message(tool_uses=[{"id": f"toolu_{n}", "name": name, "input": args}]))
    done = "The page looks right: a green heading."
    replies.append(completion(done) if kind == "openai" else message(done))
    return replies


def _png_of_data_url(url: str) -> bytes:
    head, _, data = url.partition(",")
    assert head == "data:image/png;base64"
    return base64.b64decode(data)


async def test_openai_sees_the_agents_screenshot_in_a_user_message_after_the_tool_result(
    db: Database, settings: Settings, project_id: uuid.UUID, tracker: RecordingServer
) -> None:
    with OpenAIServer(*_screenshot_script("openai", _page(tracker))) as provider:
        async with _service(settings, db, "openai:gpt-test", provider.base_url) as service:
            await _turn(service, db, project_id, prompt="A bakery page")
        requests = list(provider.requests)

    # The real API refuses an image in a tool message (the fake does too): every request
    # was answered, and the last one carries the screenshot from the user's side.
    assert len(requests) == 4
    assert "screenshot_preview" in {t["function"]["name"] for t in requests[0]["tools"]}
    last = requests[-1]["messages"]
    assert [m["role"] for m in last[-3:]] == ["assistant", "tool", "user"]
    tool_result, shown = last[-2], last[-1]
    assert last[-3]["tool_calls"][0]["function"]["name"] == "screenshot_preview"
    assert tool_result["tool_call_id"] == "call_2"
    assert tool_result["content"].startswith("Screenshot of the preview (1280x800, saved as ")
    assert tool_result["content"].endswith("(1 image(s) in the next user message.)")
    assert shown["content"][0] == {
        "type": "text",
        "text": "Image(s) from the screenshot_preview tool result:",
    }
    assert shown["content"][1]["type"] == "image_url"
    png = _png_of_data_url(shown["content"][1]["image_url"]["url"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert tracker.paths == []  # the preview's origin only, as for the screenshot route
    kept = list((settings.data_dir / "screenshots" / str(project_id)).glob("*.png"))
    assert [p.read_bytes() for p in kept] == [png]


async def test_anthropic_sees_the_agents_screenshot_inside_the_tool_result(
    db: Database, settings: Settings, project_id: uuid.UUID, tracker: RecordingServer
) -> None:
    with AnthropicServer(*_screenshot_script("anthropic", _page(tracker))) as provider:
        async with _service(settings, db, "anthropic:claude-test", provider.base_url) as service:
            await _turn(service, db, project_id, prompt="A bakery page")
        requests = list(provider.requests)

    assert len(requests) == 4
    assert "screenshot_preview" in {t["name"] for t in requests[0]["tools"]}
    last = requests[-1]["messages"][-1]
    assert last["role"] == "user"
    (result,) = last["content"]
    assert result["type"] == "tool_result" and result["tool_use_id"] == "toolu_2"
    caption, image = result["content"]
    assert caption["type"] == "text" and caption["text"].startswith("Screenshot of the preview")
    assert image["type"] == "image"
    assert image["source"]["type"] == "base64" and image["source"]["media_type"] == "image/png"
    assert base64.b64decode(image["source"]["data"]).startswith(b"\x89PNG\r\n\x1a\n")
    assert tracker.paths == []


async def test_a_model_not_known_to_read_images_is_not_offered_the_screenshot_tool(
    db: Database, settings: Settings, project_id: uuid.UUID
) -> None:
    with OpenAIServer(completion("Done.")) as provider:
        chosen = Settings(
            data_dir=settings.data_dir, model_base_url=provider.base_url, model_api_key="sk-test"
        )
        async with RunService.open(chosen, db=db, model="openai:gpt-test") as service:
            await _turn(service, db, project_id, prompt="A bakery page")
        (request,) = provider.requests
    assert "screenshot_preview" not in {t["function"]["name"] for t in request["tools"]}
