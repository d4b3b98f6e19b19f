"""From a run request to a turn: the prompt, the stream modes, what is refused."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.load import dumpd
from langchain_core.messages import AIMessage, HumanMessage

from builder.errors import InvalidInput
from builder.http.langgraph.inputs import (
    RunOptions,
    check_checkpoint,
    check_run_options,
    graph_stream_modes,
    prompt_of,
    requested_checkpoint,
    run_options,
)
from builder.http.langgraph.schemas import RunCreateBody


@pytest.mark.parametrize(
    ("graph_input", "prompt"),
    [
        ({"messages": [{"role": "user", "content": "A site"}]}, "A site"),
        ({"messages": [{"role": "human", "content": " A site "}]}, "A site"),
        ({"messages": [HumanMessage("A site").model_dump()]}, "A site"),
        ({"messages": [dumpd(HumanMessage("A site"))]}, "A site"),
        ({"messages": [["user", "A site"]]}, "A site"),
        ({"messages": "A site"}, "A site"),
        ({"messages": {"type": "human", "content": "A site"}}, "A site"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "A site"}]}]},
            "A site",
        ),
        ({"messages": ["Two", {"role": "user", "content": "parts"}]}, "Two\n\nparts"),
        (None, None),
    ],
)
def test_every_form_of_user_message_is_a_prompt(graph_input: Any, prompt: str | None) -> None:
    assert prompt_of(graph_input) == prompt


@pytest.mark.parametrize(
    ("graph_input", "message"),
    [
        ({"messages": [AIMessage("Hi").model_dump()]}, "only user messages can be sent, not 'ai'"),
        ({"messages": [dumpd(AIMessage("Hi"))]}, "only user messages can be sent, not 'AIMessage'"),
        ({"messages": [{"role": "system", "content": "Obey"}]}, "only user messages"),
        ({"messages": []}, "the input has no user message with text"),
        ({"messages": [{"role": "user", "content": ""}]}, "the input has no user message"),
        ({"messages": [{"role": "user", "content": 3}]}, "a message's content must be text"),
        ({"messages": [{"content": "no role"}]}, "a message must be"),
        ({"messages": [], "files": {}}, "the input must be"),
        (["A site"], "the input must be"),
    ],
)
def test_anything_else_is_refused(graph_input: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        prompt_of(graph_input)
    assert caught.value.message.startswith(message)


def _body(**fields: Any) -> RunCreateBody:
    return RunCreateBody(assistant_id="web_builder", **fields)


def test_run_options() -> None:
    assert run_options(_body()) == RunOptions(("values",), "reject", None, None)
    options = run_options(
        _body(
            stream_mode=["updates", "events", "updates"],
            multitask_strategy="enqueue",
            context={"max_steps": 3},
            config={"configurable": {"token_budget": 1000, "max_steps": 9, "model": "x"}},
        )
    )
    assert options == RunOptions(("updates", "events"), "enqueue", 3, 1000)
    with pytest.raises(InvalidInput, match="unsupported stream mode"):
        run_options(_body(stream_mode="tools"))
    with pytest.raises(InvalidInput, match="max_steps must be a positive integer"):
        run_options(_body(context={"max_steps": "3"}))


def test_graph_stream_modes() -> None:
    assert graph_stream_modes(("updates",)) == ["values", "tasks"]
    assert graph_stream_modes(("debug", "events", "checkpoints")) == [
        "values",
        "tasks",
        "checkpoints",
        "debug",
    ]


@pytest.mark.parametrize(
    ("fields", "feature"),
    [
        ({"interrupt_after": "*"}, "interrupt_before/interrupt_after"),
        ({"webhook": "https://example.com"}, "webhook"),
        ({"after_seconds": 5}, "after_seconds"),
        ({"multitask_strategy": "rollback"}, "multitask_strategy 'rollback'"),
        ({"command": {"goto": "agent"}}, "command goto/update"),
    ],
)
def test_features_builder_does_not_offer_are_refused(fields: dict[str, Any], feature: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_run_options(_body(**fields))
    assert caught.value.message.startswith(f"{feature} is not supported: ")


def test_a_run_may_name_the_latest_checkpoint_and_no_other() -> None:
    assert requested_checkpoint(_body()) is None
    assert requested_checkpoint(_body(checkpoint_id="1f1")) == "1f1"
    assert requested_checkpoint(_body(checkpoint={"checkpoint_ns": "", "checkpoint_id": "1f1"}))
    assert requested_checkpoint(_body(checkpoint={"checkpoint_id": None})) is None
    check_checkpoint(None, "1f2")
    check_checkpoint("1f2", "1f2")
    with pytest.raises(InvalidInput) as caught:
        check_checkpoint("1f1", "1f2")
    assert caught.value.message == (
        "running from an earlier checkpoint is not supported: a run always continues the "
        "latest state, and 1f1 is not the thread's latest checkpoint (1f2)"
    )
    with pytest.raises(InvalidInput, match=r"latest checkpoint \(none yet\)"):
        check_checkpoint("1f1", None)


def test_what_is_offered_passes() -> None:
    check_run_options(
        _body(
            multitask_strategy="enqueue",
            command={"resume": "yes"},
            durability="async",
            stream_subgraphs=True,
        )
    )


def test_one_message_size_limit_for_both_apis() -> None:
    from builder.http.schemas import ChatBody
    from builder.runs.handle import MAX_PROMPT_CHARS

    assert MAX_PROMPT_CHARS == 20_000
    longest = "x" * MAX_PROMPT_CHARS
    assert prompt_of({"messages": [{"role": "user", "content": longest}]}) == longest
    assert ChatBody(prompt=longest).prompt == longest
    with pytest.raises(InvalidInput, match="the limit is 20,000"):
        prompt_of({"messages": [{"role": "user", "content": longest + "x"}]})
    with pytest.raises(InvalidInput, match="the limit is 20,000"):  # several make one prompt
        prompt_of({"messages": [longest[:15_000], longest[:5_000]]})
