"""The checkpoint serializer that encodes each message of a conversation once."""

from __future__ import annotations

from typing import Any

import ormsgpack
import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.serde import jsonplus
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from builder.graphs.serializer import MessageListSerializer, _array_header


def conversation(turns: int) -> list[BaseMessage]:
    messages: list[BaseMessage] = []
    for n in range(turns):
        messages.append(HumanMessage(f"page {n}", id=f"h{n}"))
        messages.append(
            AIMessage(
                "",
                id=f"a{n}",
                tool_calls=[{"name": "write_file", "args": {"path": f"p{n}.html"}, "id": f"c{n}"}],
                usage_metadata={"input_tokens": 10, "output_tokens": 2, "total_tokens": 12},
            )
        )
        messages.append(
            ToolMessage(
                [{"type": "text", "text": f"Created p{n}.html"}], tool_call_id=f"c{n}", id=f"t{n}"
            )
        )
    return messages


@pytest.mark.parametrize("turns", [1, 5, 6, 40])  # 3, 15, 18 and 120 messages
def test_a_message_list_is_written_as_langgraph_writes_it(turns: int) -> None:
    messages = conversation(turns)
    plain, ours = JsonPlusSerializer(), MessageListSerializer()

    first = ours.dumps_typed(messages)
    again = ours.dumps_typed([*messages, HumanMessage("more", id="m")])

    assert first == plain.dumps_typed(messages)
    assert again == plain.dumps_typed([*messages, HumanMessage("more", id="m")])
    assert plain.loads_typed(first) == messages


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 0xFFFF, 0x10000])
def test_the_array_header_is_msgpack_s_own(length: int) -> None:
    header = _array_header(length)
    assert ormsgpack.packb([0] * length)[: len(header)] == header


def test_each_message_is_encoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: list[BaseMessage] = []
    original = jsonplus._msgpack_default

    def counting(obj: Any) -> Any:
        if isinstance(obj, BaseMessage):
            encoded.append(obj)
        return original(obj)

    monkeypatch.setattr(jsonplus, "_msgpack_default", counting)
    serializer, messages = MessageListSerializer(), conversation(10)
    for step in range(len(messages)):  # the channel as it grows, one step at a time
        serializer.dumps_typed(messages[: step + 1])

    assert encoded == messages  # not 1 + 2 + ... + 30 encodings


def test_a_message_whose_field_is_set_again_is_encoded_again() -> None:
    serializer, plain = MessageListSerializer(), JsonPlusSerializer()
    message = AIMessage("draft")
    serializer.dumps_typed([message])

    message.id = "given-when-added"  # as LangGraph's add_messages does
    assert serializer.dumps_typed([message]) == plain.dumps_typed([message])
    message.content = "final"
    assert plain.loads_typed(serializer.dumps_typed([message]))[0].content == "final"


def test_kept_encodings_stay_within_their_bound() -> None:
    serializer = MessageListSerializer(cache_bytes=2_000)
    messages = conversation(30)

    for step in range(len(messages)):
        assert serializer.dumps_typed(messages[: step + 1]) == JsonPlusSerializer().dumps_typed(
            messages[: step + 1]
        )
    assert 0 < serializer._kept.currsize <= 2_000


@pytest.mark.parametrize(
    "value",
    [[], [1, 2], [HumanMessage("a"), "not a message"], {"messages": conversation(1)}, "text"],
    ids=["empty", "numbers", "mixed", "dict", "str"],
)
def test_anything_else_is_written_as_before(value: Any) -> None:
    assert MessageListSerializer().dumps_typed(value) == JsonPlusSerializer().dumps_typed(value)


def test_a_checkpointer_s_derived_serializer_keeps_the_encodings() -> None:
    serializer = MessageListSerializer(allowed_msgpack_modules=None)
    derived = serializer.with_msgpack_allowlist([("myapp", "State")])

    assert isinstance(derived, MessageListSerializer)
    assert derived._kept is serializer._kept
