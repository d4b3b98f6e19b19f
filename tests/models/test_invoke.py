"""invoke_model against a real HTTP server speaking the OpenAI API: retries, timeouts,
errors, tools, and token streaming inside a LangGraph graph."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from structlog.testing import capture_logs

from builder.errors import OperationTimeout, ProviderError
from builder.models import ScriptedChatModel, invoke_model, load_chat_model
from builder.models.invoke import retry_after_seconds
from builder.settings import Settings
from tests.models.openai_server import OpenAIServer, Reply, completion, error

API_KEY = "sk-test-0123456789abcdefghij"
USAGE = {
    "input_tokens": 12,
    "output_tokens": 7,
    "total_tokens": 19,
    "input_token_details": {},
    "output_token_details": {},
}


def _settings(server: OpenAIServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "model_base_url": server.base_url,
        "model_api_key": API_KEY,
        "model_retry_max_wait": 0.2,
    }
    return Settings(**(values | overrides))


def _retries(logs: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    return [
        (e["event"], e["error"], e.get("attempt", e.get("attempts")))
        for e in logs
        if e["event"].startswith("retry.")
    ]


async def test_rate_limit_and_server_error_are_retried_then_the_answer_has_usage() -> None:
    replies = (error(429, "slow down", retry_after_ms="40"), error(500, "boom"))
    with OpenAIServer(*replies, completion("Hello from the server")) as server:
        settings = _settings(server)
        model = load_chat_model("openai:test-model", settings=settings)
        with capture_logs() as logs:
            answer = await invoke_model(model, "Build me a site", settings=settings)

    assert (answer.content, answer.tool_calls, answer.usage_metadata) == (
        "Hello from the server",
        [],
        USAGE,
    )
    assert _retries(logs) == [
        ("retry.attempt", "OpenAIRateLimitError", 1),
        ("retry.attempt", "OpenAIAPIError", 2),
    ]
    # The provider's retry-after-ms (40 ms) is a floor under the jittered backoff.
    assert logs[1]["sleep_s"] >= 0.04
    # Three requests in total: the SDK's own retries are off, ours did the work.
    assert [r["messages"] for r in server.requests] == [
        [{"role": "user", "content": "Build me a site"}]
    ] * 3
    assert [h["x-stainless-retry-count"] for h in server.headers] == ["0", "0", "0"]
    assert server.headers[0]["authorization"] == f"Bearer {API_KEY}"


async def test_a_client_error_is_not_retried_and_becomes_a_provider_error() -> None:
    with OpenAIServer(error(400, "bad request: context too long"), completion("never")) as server:
        settings = _settings(server)
        model = load_chat_model("openai:test-model", settings=settings)
        with capture_logs() as logs, pytest.raises(ProviderError) as caught:
            await invoke_model(model, "hi", settings=settings)

    assert (caught.value.status_code, caught.value.provider, caught.value.dependency) == (
        400,
        "openai",
        "model",
    )
    assert "context too long" in str(caught.value)
    assert getattr(caught.value.__cause__, "status_code", None) == 400
    assert len(server.requests) == 1
    assert _retries(logs) == []


async def test_persistent_server_errors_give_up_after_the_configured_retries() -> None:
    with OpenAIServer(error(503, "overloaded")) as server:
        settings = _settings(server, model_retries=2)
        model = load_chat_model("openai:test-model", settings=settings)
        with capture_logs() as logs, pytest.raises(ProviderError) as caught:
            await invoke_model(model, "hi", settings=settings)

    assert caught.value.status_code == 503
    assert len(server.requests) == 3
    assert _retries(logs) == [
        ("retry.attempt", "OpenAIAPIError", 1),
        ("retry.attempt", "OpenAIAPIError", 2),
        ("retry.gave_up", "OpenAIAPIError", 3),
    ]


async def test_a_server_that_never_answers_hits_the_ai_timeout_after_one_retry() -> None:
    with OpenAIServer(Reply(hang=True)) as server:
        settings = _settings(server, timeout_ai=0.3)
        model = load_chat_model("openai:test-model", settings=settings)
        with capture_logs() as logs, pytest.raises(OperationTimeout) as caught:
            await invoke_model(model, "hi", settings=settings)

    assert (caught.value.operation, caught.value.seconds) == ("ai", 0.3)
    assert len(server.requests) == 2
    assert _retries(logs) == [("retry.attempt", "OperationTimeout", 1)]


async def test_a_timeout_then_an_answer_succeeds() -> None:
    with OpenAIServer(Reply(hang=True), completion("late but fine")) as server:
        settings = _settings(server, timeout_ai=0.3)
        model = load_chat_model("openai:test-model", settings=settings)
        answer = await invoke_model(model, "hi", settings=settings)
    assert (answer.content, len(server.requests)) == ("late but fine", 2)


@tool
def write_file(path: str, content: str) -> str:
    """Write a file."""
    return f"wrote {path}"


async def test_tools_are_bound_for_the_call_and_tool_calls_come_back() -> None:
    call = {"id": "call_abc", "name": "write_file", "args": {"path": "a.html", "content": "<p>"}}
    with OpenAIServer(completion(None, tool_calls=[call])) as server:
        settings = _settings(server)
        model = load_chat_model("openai:test-model", settings=settings)
        answer = await invoke_model(model, "write a.html", settings=settings, tools=[write_file])

    assert answer.tool_calls == [
        {"name": "write_file", "args": call["args"], "id": "call_abc", "type": "tool_call"}
    ]
    (sent,) = server.requests
    assert [t["function"]["name"] for t in sent["tools"]] == ["write_file"]


def test_retry_after_headers_are_read() -> None:
    class Response:
        def __init__(self, headers: dict[str, str]) -> None:
            self.headers = headers

    class Failure(Exception):
        def __init__(self, headers: dict[str, str]) -> None:
            self.response = Response(headers)

    assert retry_after_seconds(Failure({"retry-after-ms": "250"})) == 0.25
    assert retry_after_seconds(Failure({"retry-after": "3"})) == 3.0
    assert retry_after_seconds(Failure({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0.0
    assert retry_after_seconds(Failure({"retry-after": "soon"})) is None
    assert retry_after_seconds(Failure({})) is None
    assert retry_after_seconds(ValueError("no response")) is None


class State(TypedDict):
    messages: Annotated[list[AnyMessage], operator.add]


def _graph(model: Any, settings: Settings, *, explicit_config: bool) -> Any:
    async def agent(state: State, config: RunnableConfig) -> dict[str, Any]:
        answer = await invoke_model(
            model,
            state["messages"],
            settings=settings,
            config=config if explicit_config else None,
        )
        return {"messages": [answer]}

    graph = StateGraph(State)
    graph.add_node("agent", agent)
    graph.add_edge(START, "agent")
    graph.add_edge("agent", END)
    return graph.compile()


async def _stream_tokens(graph: Any) -> list[str]:
    pieces: list[str] = []
    async for message, _meta in graph.astream(
        {"messages": [HumanMessage("hi")]}, stream_mode="messages"
    ):
        assert isinstance(message, AIMessageChunk)
        if message.content:
            pieces.append(str(message.content))
    return pieces


@pytest.mark.parametrize("explicit_config", [False, True])
async def test_openai_tokens_stream_through_a_langgraph_node(explicit_config: bool) -> None:
    with OpenAIServer(completion("Hello from the server")) as server:
        settings = _settings(server)
        model = load_chat_model("openai:test-model", settings=settings)
        graph = _graph(model, settings, explicit_config=explicit_config)
        pieces = await _stream_tokens(graph)
        state = await graph.ainvoke({"messages": [HumanMessage("hi")]})

    assert pieces == ["Hell", "o fr", "om t", "he s", "erve", "r"]
    final = state["messages"][-1]
    assert isinstance(final, AIMessage)
    assert (final.content, final.usage_metadata) == ("Hello from the server", USAGE)
    assert server.requests[0]["stream"] is True
    assert server.requests[0]["stream_options"] == {"include_usage": True}


async def test_scripted_tokens_stream_through_a_langgraph_node() -> None:
    model = ScriptedChatModel(
        script={"turns": [{"responses": [{"content": "Building your site now."}]}]}
    )
    graph = _graph(model, Settings(), explicit_config=False)
    pieces = await _stream_tokens(graph)
    assert pieces == ["Building ", "your ", "site ", "now."]


async def test_a_model_with_tools_already_bound_is_called_and_named() -> None:
    with OpenAIServer(error(422, "unprocessable")) as server:
        settings = _settings(server)
        bound = load_chat_model("openai:test-model", settings=settings).bind_tools([write_file])
        with pytest.raises(ProviderError) as caught:
            await invoke_model(bound, "hi", settings=settings)
    assert (caught.value.status_code, caught.value.provider) == (422, "openai")
    assert [t["function"]["name"] for t in server.requests[0]["tools"]] == ["write_file"]
