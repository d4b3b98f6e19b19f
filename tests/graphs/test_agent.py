"""The agent node's view of the context: the window of recent messages, and images out
of tool results for OpenAI-style APIs."""

from __future__ import annotations

import random

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately, trim_messages

from builder.graphs.agent import TokenCounts, context_window, tool_images_as_user_messages

IMAGE = {"type": "image", "base64": "iVBORw0KGgo=", "mime_type": "image/png"}


def _calls(*ids: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": "shot", "args": {}, "id": i} for i in ids])


def test_images_follow_the_whole_run_of_tool_results_in_one_user_message() -> None:
    messages = [
        HumanMessage("a page"),
        _calls("a", "b"),
        ToolMessage(
            [{"type": "text", "text": "Screenshot 1."}, IMAGE], tool_call_id="a", name="shot"
        ),
        ToolMessage([IMAGE], tool_call_id="b"),
        AIMessage("Looks right."),
    ]
    out = tool_images_as_user_messages(messages)
    assert [type(m).__name__ for m in out] == [
        "HumanMessage", "AIMessage", "ToolMessage", "ToolMessage", "HumanMessage", "AIMessage",
    ]  # fmt: skip
    assert out[2].content == "Screenshot 1.\n(1 image(s) in the next user message.)"
    assert out[3].content == (
        "The tool tool answered with images.\n(1 image(s) in the next user message.)"
    )
    assert out[4].content == [
        {"type": "text", "text": "Image(s) from the shot tool result:"},
        IMAGE,
        {"type": "text", "text": "Image(s) from the tool tool result:"},
        IMAGE,
    ]
    # The context itself is not changed: only what is sent.
    assert messages[2].content[1] == IMAGE


def test_a_context_without_images_in_tool_results_is_sent_as_it_is() -> None:
    messages = [
        HumanMessage([{"type": "text", "text": "like this"}, IMAGE]),
        _calls("a"),
        ToolMessage("Wrote index.html.", tool_call_id="a"),
    ]
    assert tool_images_as_user_messages(messages) == messages


def _turns(n: int) -> list[BaseMessage]:
    rng = random.Random(n)
    messages: list[BaseMessage] = []
    for turn in range(n):
        messages.append(HumanMessage("ask " * rng.randint(1, 40), id=f"h{turn}"))
        for call in range(rng.randint(0, 3)):
            messages.append(_calls(f"c{turn}-{call}"))
            messages.append(
                ToolMessage("done " * rng.randint(0, 60), tool_call_id=f"c{turn}-{call}")
            )
        messages.append(AIMessage("answer " * rng.randint(0, 30)))
    return messages


@pytest.mark.parametrize("budget", [0, 5, 40, 120, 400, 2_000, 10**9])
def test_the_window_is_what_trim_messages_keeps(budget: int) -> None:
    counts = TokenCounts()
    messages = _turns(12)
    for end in range(1, len(messages) + 1):  # the conversation as it grows, step by step
        seen = messages[:end]
        window = context_window(seen, budget, counts)
        trimmed = trim_messages(
            seen,
            max_tokens=budget,
            token_counter=count_tokens_approximately,
            strategy="last",
            start_on="human",
            allow_partial=False,
        )
        if trimmed:
            assert window == trimmed
        else:  # a turn larger than the budget: its user message and the tail
            last_human = max(i for i, m in enumerate(seen) if m.type == "human")
            assert window == [seen[last_human], *seen[last_human + 1 :][-8:]]
        assert window == context_window(seen, budget)  # as counted afresh
    # A shorter list from the same first message (the conversation pruned).
    for end in (len(messages) // 2, 1):
        assert context_window(messages[:end], budget, counts) == context_window(
            messages[:end], budget
        )


def test_a_growing_conversation_counts_only_its_new_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts, messages = TokenCounts(), _turns(10)
    context_window(messages[:20], 10**9, counts)
    counted: list[BaseMessage] = []
    count = TokenCounts.__call__

    def counting(self: TokenCounts, message: BaseMessage) -> int:
        counted.append(message)
        return count(self, message)

    monkeypatch.setattr(TokenCounts, "__call__", counting)
    context_window(messages, 10**9, counts)
    assert counted == messages[20:]
    # Another list from the same first message (one replaced): counted from the start,
    # each message's own count remembered.
    counted.clear()
    replaced = [*messages[:5], HumanMessage("instead"), *messages[6:]]
    assert context_window(replaced, 10**9, counts) == replaced
    assert counted == replaced
