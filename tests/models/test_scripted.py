"""ScriptedChatModel: positions derived from the conversation, streaming, usage, tools,
scripted errors and delays."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from structlog.testing import capture_logs

from builder.errors import ConfigurationError, OperationTimeout, ProviderError
from builder.models import ScriptedChatModel, invoke_model
from builder.models.scripted import ScriptPosition
from builder.settings import Settings

SCRIPT: dict[str, Any] = {
    "final_message": "All done.",
    "turns": [
        {
            "responses": [
                {
                    "content": "Planning.",
                    "tool_calls": [{"name": "plan_changes", "args": {"goal": "site", "steps": []}}],
                },
                {
                    "content": "Writing two files.",
                    "tool_calls": [
                        {"name": "write_file", "args": {"path": "a.html", "content": "<p>a</p>"}},
                        {"name": "write_file", "args": {"path": "b.html", "content": "<p>b</p>"}},
                    ],
                },
                {"content": "Built the site."},
            ]
        },
        {
            "responses": [
                {
                    "content": "Editing.",
                    "tool_calls": [
                        {
                            "name": "edit_file",
                            "args": {"path": "a.html", "search": "a", "replace": "A"},
                        }
                    ],
                },
                {"content": "Edited."},
            ]
        },
    ],
}


def _model(script: dict[str, Any] | None = None, **kwargs: Any) -> ScriptedChatModel:
    return ScriptedChatModel(script=script or SCRIPT, **kwargs)


def _run_turn(model: ScriptedChatModel, history: list[BaseMessage]) -> list[BaseMessage]:
    """Play one turn like an agent loop: call the model, answer its tool calls, repeat."""
    history = list(history)
    while True:
        answer = model.invoke(history)
        history.append(answer)
        if not answer.tool_calls:
            return history
        for call in answer.tool_calls:
            history.append(ToolMessage(f"{call['name']} ok", tool_call_id=call["id"]))


def _shape(message: BaseMessage) -> tuple[Any, ...]:
    assert isinstance(message, AIMessage)
    return (message.content, message.tool_calls)


def test_a_turn_replays_in_order_with_deterministic_tool_call_ids() -> None:
    history = _run_turn(_model(), [HumanMessage("build a site")])
    answers = [_shape(m) for m in history if isinstance(m, AIMessage)]
    assert answers == [
        (
            "Planning.",
            [
                {
                    "name": "plan_changes",
                    "args": {"goal": "site", "steps": []},
                    "id": "call_0_0_0",
                    "type": "tool_call",
                }
            ],
        ),
        (
            "Writing two files.",
            [
                {
                    "name": "write_file",
                    "args": {"path": "a.html", "content": "<p>a</p>"},
                    "id": "call_0_1_0",
                    "type": "tool_call",
                },
                {
                    "name": "write_file",
                    "args": {"path": "b.html", "content": "<p>b</p>"},
                    "id": "call_0_1_1",
                    "type": "tool_call",
                },
            ],
        ),
        ("Built the site.", []),
    ]


def test_a_resumed_conversation_continues_at_the_next_step() -> None:
    history = _run_turn(_model(), [HumanMessage("build a site")])
    ai_positions = [i for i, m in enumerate(history) if isinstance(m, AIMessage)]
    for k, position in enumerate(ai_positions):
        # Cut the conversation after k AI steps (and their tool results), as a
        # checkpoint would, and ask a brand-new model instance (a new process).
        truncated = history[:position]
        resumed = _model().invoke(truncated)
        assert _shape(resumed) == _shape(history[position])
        assert _model().position(truncated) == ScriptPosition(turn=0, step=k, script_turn=0)


def test_turns_follow_human_messages_and_cycle_after_the_last() -> None:
    model = _model()
    history = _run_turn(model, [HumanMessage("build")])
    history = _run_turn(model, [*history, HumanMessage("edit")])
    assert _shape(history[-1]) == ("Edited.", [])
    assert history[-3].tool_calls[0]["id"] == "call_1_0_0"  # type: ignore[attr-defined]
    third = model.invoke([*history, HumanMessage("again")])
    assert _shape(third)[0] == "Planning."
    assert third.tool_calls[0]["id"] == "call_2_0_0"  # a new turn: new ids, same script turn


@pytest.mark.parametrize(
    ("after_last_turn", "expected"),
    [("cycle", "Planning."), ("repeat_last", "Editing."), ("finish", "All done.")],
)
def test_after_the_last_turn(after_last_turn: str, expected: str) -> None:
    model = _model(SCRIPT | {"after_last_turn": after_last_turn})
    history: list[BaseMessage] = [HumanMessage("one"), AIMessage("x"), HumanMessage("two")]
    history += [AIMessage("y"), HumanMessage("three")]
    assert model.invoke(history).content == expected


def test_an_exhausted_turn_answers_the_final_message_without_tool_calls() -> None:
    history: list[BaseMessage] = [HumanMessage("build"), *[AIMessage(f"{n}") for n in range(3)]]
    assert _shape(_model().invoke(history)) == ("All done.", [])
    assert _shape(_model({"turns": []}).invoke("hi")) == ("Done.", [])


def test_usage_is_a_deterministic_estimate_or_the_scripted_override() -> None:
    prompt = "build me a bakery site"
    answer = _model().invoke(prompt)
    args_text = "plan_changes" + json.dumps({"goal": "site", "steps": []}, sort_keys=True)
    output_tokens = math.ceil(len("Planning." + args_text) / 4)
    input_tokens = math.ceil(len(prompt) / 4)
    assert answer.usage_metadata == {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": input_tokens + output_tokens,
    }
    overridden = _model(
        {
            "turns": [
                {"responses": [{"content": "x", "usage": {"input_tokens": 7, "output_tokens": 3}}]}
            ]
        }
    ).invoke(prompt)
    assert overridden.usage_metadata == {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}


def _merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged = merged + chunk
    return merged


def test_streaming_yields_text_pieces_and_tool_call_chunks_that_add_up() -> None:
    model = _model()
    history = [HumanMessage("build"), AIMessage("Planning.")]
    chunks = list(model.stream(history))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    texts = [c.content for c in chunks if c.content]
    assert texts == ["Writing ", "two ", "files."]
    call_chunks = [c.tool_call_chunks[0] for c in chunks if c.tool_call_chunks]
    assert [(c["name"], c["id"], c["index"]) for c in call_chunks if c["name"]] == [
        ("write_file", "call_0_1_0", 0),
        ("write_file", "call_0_1_1", 1),
    ]
    merged = _merge(chunks)  # type: ignore[arg-type]
    whole = model.invoke(history)
    assert (merged.content, merged.tool_calls, merged.usage_metadata) == (
        whole.content,
        whole.tool_calls,
        whole.usage_metadata,
    )
    assert chunks[-1].chunk_position == "last"  # type: ignore[attr-defined]


async def test_async_streaming_matches_sync_streaming() -> None:
    model = _model()
    sync_chunks = [(c.content, c.tool_call_chunks) for c in model.stream("build")]
    async_chunks = [(c.content, c.tool_call_chunks) async for c in model.astream("build")]
    assert async_chunks == sync_chunks
    assert _shape(await model.ainvoke("build")) == _shape(model.invoke("build"))


@tool
def plan_changes(goal: str, steps: list[str]) -> str:
    """Plan."""
    return "planned"


@tool
def write_file(path: str, content: str) -> str:
    """Write."""
    return "written"


@tool
def edit_file(path: str, search: str, replace: str) -> str:
    """Edit."""
    return "edited"


def test_bind_tools_checks_the_script_against_the_bound_tools() -> None:
    model = _model()
    with pytest.raises(ConfigurationError) as caught:
        model.bind_tools([plan_changes, write_file])
    assert str(caught.value) == (
        "chat script scripted calls tool 'edit_file' (turns[1].responses[0]) but it is not "
        "among the bound tools: plan_changes, write_file"
    )
    bound = model.bind_tools([plan_changes, write_file, edit_file], tool_choice="auto")
    assert _shape(bound.invoke("build")) == _shape(model.invoke("build"))
    as_dicts = [
        {"type": "function", "function": {"name": n, "parameters": {}}}
        for n in ("plan_changes", "write_file", "edit_file")
    ]
    assert model.bind_tools(as_dicts).invoke("build").tool_calls[0]["name"] == "plan_changes"


def test_helper_tasks_answer_from_the_script_or_deterministically() -> None:
    def task(name: str, text: str) -> list[BaseMessage]:
        return [SystemMessage(f"# task: {name}\nDo it."), HumanMessage(text)]

    scripted = _model(SCRIPT | {"tasks": {"generate_title": "My Bakery"}})
    assert scripted.invoke(task("generate_title", "a bakery site")).content == "My Bakery"
    fallback = scripted.invoke(task("improve_prompt", "  a   bakery site. ")).content
    assert isinstance(fallback, str) and fallback.startswith("a bakery site.\n\nRequirements:\n")
    assert _model().invoke(task("generate_title", "a site for my bakery")).content == (
        "A site for my bakery"
    )
    # An unknown task marker is an ordinary conversation.
    assert _model().invoke(task("summarise", "x")).content == "Planning."


ERROR_SCRIPT = {
    "turns": [
        {
            "responses": [
                {
                    "content": "finally",
                    "error": {"status_code": 429, "message": "rate limited", "times": 2},
                }
            ]
        }
    ]
}


def test_a_scripted_error_fires_its_times_per_position_then_answers() -> None:
    model = _model(ERROR_SCRIPT)
    for _ in range(2):
        with pytest.raises(ProviderError) as caught:
            model.invoke("hi")
        assert (caught.value.status_code, caught.value.provider, str(caught.value)) == (
            429,
            "scripted",
            "rate limited",
        )
    assert model.invoke("hi").content == "finally"
    # Another conversation reaching the same step fails afresh.
    with pytest.raises(ProviderError):
        model.invoke("a different request")


async def test_invoke_model_retries_scripted_provider_errors() -> None:
    settings = Settings(model_retry_max_wait=0.01)
    with capture_logs() as logs:
        answer = await invoke_model(_model(ERROR_SCRIPT), "hi", settings=settings)
    assert answer.content == "finally"
    assert [(e["event"], e["error"]) for e in logs if e["event"].startswith("retry.")] == [
        ("retry.attempt", "ProviderError"),
        ("retry.attempt", "ProviderError"),
    ]
    permanent = {
        "turns": [{"responses": [{"content": "x", "error": {"status_code": 500, "times": 99}}]}]
    }
    with pytest.raises(ProviderError) as caught:
        await invoke_model(
            _model(permanent), "hi", settings=Settings(model_retries=1, model_retry_max_wait=0.01)
        )
    assert caught.value.status_code == 500


async def test_a_scripted_delay_is_cut_by_the_ai_timeout() -> None:
    slow = {"turns": [{"responses": [{"content": "too late", "delay_s": 30}]}]}
    with pytest.raises(OperationTimeout) as caught:
        await invoke_model(_model(slow), "hi", settings=Settings(timeout_ai=0.1))
    assert (caught.value.operation, caught.value.seconds) == ("ai", 0.1)


def test_standard_parameters_are_accepted_and_reported() -> None:
    model = _model(model="scripted:demo", temperature=0, max_tokens=10, stop=["x"], timeout=5)
    assert model._get_ls_params() == {
        "ls_provider": "scripted",
        "ls_model_name": "scripted:demo",
        "ls_model_type": "chat",
        "ls_temperature": 0,
        "ls_max_tokens": 10,
        "ls_stop": ["x"],
    }
    assert model._llm_type == "scripted"
