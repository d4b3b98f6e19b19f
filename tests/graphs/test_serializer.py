"""The checkpoint serializer that encodes each message of a conversation once."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import ormsgpack
import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langgraph.checkpoint.serde import jsonplus
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from pydantic import BaseModel

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


def test_a_conversation_s_next_list_encodes_only_its_new_messages(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each step's list starts with the last one's messages: their encoded items are
    taken as one (no per-message lookup), for each of two conversations in turn."""
    serializer, plain = MessageListSerializer(), JsonPlusSerializer()
    first, second = conversation(10), conversation(12)
    for step in range(len(first)):
        serializer.dumps_typed(first[: step + 1])
        serializer.dumps_typed(second[: step + 1])
    looked_up: list[BaseMessage] = []
    encoded = serializer._encoded

    def counting(message: BaseMessage) -> bytes | None:
        looked_up.append(message)
        return encoded(message)

    monkeypatch.setattr(serializer, "_encoded", counting)
    for step in range(len(first), len(second)):
        assert serializer.dumps_typed(second[: step + 1]) == plain.dumps_typed(second[: step + 1])
    assert serializer.dumps_typed(first) == plain.dumps_typed(first)

    assert looked_up == second[len(first) :]


class Note(HumanMessage):
    """A message class of an app's own, with HumanMessage's fields."""


def test_a_list_that_is_not_the_last_one_and_more_is_encoded_message_by_message() -> None:
    """A field set again on an earlier message, a message replaced or removed, or a
    shorter list: the list is written as LangGraph writes it."""
    serializer, plain = MessageListSerializer(), JsonPlusSerializer()
    messages = conversation(6)
    serializer.dumps_typed(messages)

    messages[4].id = "given-again"
    assert serializer.dumps_typed(messages) == plain.dumps_typed(messages)
    messages[4].content = "changed"  # a new value object
    assert plain.loads_typed(serializer.dumps_typed(messages))[4].content == "changed"

    replaced = [*messages[:7], HumanMessage("instead", id="i"), *messages[8:]]
    assert serializer.dumps_typed(replaced) == plain.dumps_typed(replaced)
    serializer.dumps_typed(messages)
    # Another message holding the very same field values: still another message.
    twin = Note.model_construct(**messages[3].__dict__)
    retyped = [*messages[:3], twin, *messages[4:]]
    assert serializer.dumps_typed(retyped) == plain.dumps_typed(retyped)
    removed = messages[:5] + messages[6:]
    assert serializer.dumps_typed(removed) == plain.dumps_typed(removed)
    assert serializer.dumps_typed(messages[:3]) == plain.dumps_typed(messages[:3])
    mixed = [*messages, "not a message"]
    assert serializer.dumps_typed(mixed) == plain.dumps_typed(mixed)


def test_kept_encodings_stay_within_their_bound() -> None:
    serializer = MessageListSerializer(cache_bytes=2_000)
    messages = conversation(30)

    for step in range(len(messages)):
        assert serializer.dumps_typed(messages[: step + 1]) == JsonPlusSerializer().dumps_typed(
            messages[: step + 1]
        )
    assert 0 < serializer._kept.currsize <= 2_000
    assert serializer._lists.currsize <= 2_000


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
    assert derived._lists is serializer._lists


class Reply(BaseModel):
    """A structured reply an app keeps in a message's ``additional_kwargs``."""

    title: str


def every_kind_of_message() -> list[BaseMessage]:
    return [
        *conversation(2),
        SystemMessage("You build sites.", id="s"),
        HumanMessage([{"type": "text", "text": "look"}, {"type": "image_url", "image_url": "x"}]),
        AIMessage(
            [{"type": "text", "text": "Done."}],
            id="a",
            additional_kwargs={"created": datetime(2026, 1, 2, tzinfo=UTC)},
            response_metadata={"model_name": "m", "finish_reason": "stop"},
            invalid_tool_calls=[{"name": "x", "args": "{bad", "id": "i", "error": "json"}],
        ),
        AIMessageChunk("par", id="c", tool_call_chunks=[{"name": "f", "args": "{}", "id": "k"}]),
        ToolMessage("failed", tool_call_id="k", status="error", artifact={"files": [1, 2]}),
        ChatMessage("hi", role="critic"),
        FunctionMessage("42", name="answer"),
        RemoveMessage(id="gone"),
    ]


def _stored(module: str, name: str, fields: dict[str, Any]) -> tuple[str, bytes]:
    """A message as a serializer stores it, with the given fields."""
    payload = ormsgpack.packb([module, name, fields, "model_validate_json"])
    return "msgpack", ormsgpack.packb([ormsgpack.Ext(jsonplus.EXT_PYDANTIC_V2, payload)])


def test_messages_are_read_back_as_langgraph_reads_them() -> None:
    messages = every_kind_of_message()
    stored = JsonPlusSerializer().dumps_typed(messages)

    serializer = MessageListSerializer()
    theirs = JsonPlusSerializer().loads_typed(stored)

    for _ in range(2):  # the first of a class is built differently from the next ones
        ours = serializer.loads_typed(stored)
        assert ours == theirs == messages
        for mine, reference in zip(ours, theirs, strict=True):
            assert type(mine) is type(reference)
            assert list(mine.__dict__) == list(reference.__dict__)  # the fields' order too
            assert mine.__pydantic_fields_set__ == reference.__pydantic_fields_set__
            assert mine.__pydantic_extra__ == reference.__pydantic_extra__
            assert mine.__pydantic_private__ == reference.__pydantic_private__
        assert ours[8].additional_kwargs["created"] == datetime(2026, 1, 2, tzinfo=UTC)


def test_messages_are_rebuilt_without_validating_them_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    messages = every_kind_of_message()
    stored = JsonPlusSerializer().dumps_typed(messages)
    validated: list[Any] = []
    monkeypatch.setattr(BaseMessage, "__init__", lambda self, **kw: validated.append(kw))

    assert MessageListSerializer().loads_typed(stored) == messages
    assert validated == []  # every class's __init__ ends in BaseMessage's


def test_a_message_stored_with_other_fields_is_validated_as_before() -> None:
    # As an older LangChain stored it: no tool_calls field, the provider's raw calls only.
    fields = AIMessage("", id="old").model_dump()
    del fields["tool_calls"], fields["invalid_tool_calls"]
    fields["additional_kwargs"] = {
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
        ]
    }
    extra = {**HumanMessage("hi").model_dump(), "mood": "curious"}
    stored = [
        _stored("langchain_core.messages.ai", "AIMessage", fields),
        _stored("langchain_core.messages.human", "HumanMessage", extra),
    ]

    for data in stored:
        assert MessageListSerializer().loads_typed(data) == JsonPlusSerializer().loads_typed(data)
    [old] = MessageListSerializer().loads_typed(stored[0])
    assert old.tool_calls == [{"name": "f", "args": {"a": 1}, "id": "c1", "type": "tool_call"}]
    [human] = MessageListSerializer().loads_typed(stored[1])
    assert human.mood == "curious"


def test_the_allowlist_still_decides_what_else_is_read() -> None:
    strict = MessageListSerializer(allowed_msgpack_modules=None)
    stored = JsonPlusSerializer().dumps_typed([HumanMessage("hi", id="h"), Reply(title="x")])

    message, reply = strict.loads_typed(stored)
    derived_message, derived_reply = strict.with_msgpack_allowlist([Reply]).loads_typed(stored)

    assert message == derived_message == HumanMessage("hi", id="h")
    assert reply == {"title": "x"}  # blocked: not allowed, read as its fields
    assert derived_reply == Reply(title="x")


def test_every_message_class_is_known_before_any_is_imported() -> None:
    # langchain_core.messages imports its classes when first asked for them.
    probe = (
        "from builder.graphs.serializer import _message_classes\n"
        "print(' '.join(sorted(name for _, name in _message_classes())))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()

    assert {"ChatMessage", "FunctionMessage", "ToolMessageChunk", "RemoveMessage"} <= set(out)


def test_each_read_gives_its_own_messages() -> None:
    serializer = MessageListSerializer()
    stored = JsonPlusSerializer().dumps_typed(conversation(2))

    first, second = serializer.loads_typed(stored), serializer.loads_typed(stored)
    first[1].tool_calls[0]["args"]["path"] = "changed.html"
    first[0].content = "changed"

    assert second == serializer.loads_typed(stored) == conversation(2)
    assert all(a is not b for a, b in zip(first, second, strict=True))


def test_a_derived_serializer_rebuilds_messages_directly_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A strict allowlist makes LangGraph derive a new serializer for a graph's own types.
    derived = MessageListSerializer(allowed_msgpack_modules=None).with_msgpack_allowlist([Reply])
    messages = conversation(2)
    stored = JsonPlusSerializer().dumps_typed(messages)
    validated: list[Any] = []
    monkeypatch.setattr(BaseMessage, "__init__", lambda self, **kw: validated.append(kw))

    assert derived.loads_typed(stored) == messages
    assert validated == []
