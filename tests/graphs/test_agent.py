"""The agent node's view of the context: images out of tool results for OpenAI-style APIs."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from builder.graphs.agent import tool_images_as_user_messages

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
