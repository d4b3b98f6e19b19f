"""LangGraph's checkpoint serializer, encoding each message of a conversation once.

LangGraph stores a channel's whole value again at every step that changes it: the
``messages`` channel of a turn of n steps is encoded n times, each time every message in
it, so a long turn spends most of a step's CPU encoding messages it encoded before.
:class:`MessageListSerializer` keeps each message's encoding (bounded, least recently
used first out) and writes a list of messages as the same msgpack array, header and the
kept encodings, byte for byte what LangGraph's own serializer writes, read back by it.
It also keeps each conversation's last list written, as one run of encoded items: the
next step's list starts with the same messages, so only the messages added since are
looked up, and the step's cost no longer grows with the conversation's length (but for
an identity check of each earlier message and its field values, made in C).

A kept encoding is used only for the same message object with the same field values
(each field's object, by identity, as when it was encoded: a field set again, such as
the id LangGraph gives a message when it is added to the state, is encoded again).
Changing a field's value in place (appending to a message's ``tool_calls`` list) is not
seen; LangGraph's own reducers never do it, they replace a message by id.

Reading, a LangChain message whose stored fields are exactly its class's fields (as
every message this version of LangChain wrote) is rebuilt without validation, as
``model_construct`` would build it: the values are what the message held when it was
validated and dumped, so validating them again, as LangGraph's reader does (each class's
``__init__`` and validators), gives the same message at several times the cost. A
message stored with other fields (by another LangChain version, or with extra fields)
goes through LangGraph's reader as before, and so does anything else. LangGraph counts
every LangChain message class as safe to read, so the allowlist is not bypassed.
"""

from __future__ import annotations

import operator
import struct
import threading
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from itertools import chain
from typing import Any

import langchain_core.messages
import ormsgpack
from cachetools import LRUCache
from langchain_core.messages import BaseMessage
from langgraph.checkpoint.serde.jsonplus import EXT_PYDANTIC_V2, JsonPlusSerializer

__all__ = ["MessageListSerializer"]

DEFAULT_CACHE_BYTES = 64 * 1024 * 1024
"""Encodings kept per serializer, in bytes."""


class _Kept:
    """One message's encoding, with what it was made from."""

    __slots__ = ("encoded", "fields", "ids", "message")

    def __init__(self, message: BaseMessage, fields: tuple[Any, ...], encoded: bytes) -> None:
        self.message = message  # held: its id() is not reused while kept
        self.fields = fields  # held too, so that their ids are not reused either
        self.ids = tuple(map(id, fields))
        self.encoded = encoded


class _KeptList:
    """A message list's encoded items, with the messages and field values they encode."""

    __slots__ = ("body", "fields", "messages")

    def __init__(self, messages: tuple[BaseMessage, ...], fields: tuple[Any, ...], body: bytes):
        self.messages = messages  # held, like their field values: no id is reused
        self.fields = fields
        self.body = body


_dict_of = operator.attrgetter("__dict__")


def _field_values(messages: Sequence[BaseMessage]) -> tuple[Any, ...]:
    """Every field value of ``messages``, in order, as one tuple (made without a Python
    loop: this runs over the whole conversation at every step)."""
    return tuple(chain.from_iterable(map(dict.values, map(_dict_of, messages))))


def _same_objects(left: Sequence[Any], right: Sequence[Any]) -> bool:
    return len(left) == len(right) and all(map(operator.is_, left, right))


def _array_header(length: int) -> bytes:
    """The msgpack header of an array of ``length`` items (its shortest form)."""
    if length < 16:
        return bytes((0x90 | length,))
    if length < 0x10000:
        return b"\xdc" + struct.pack(">H", length)
    return b"\xdd" + struct.pack(">I", length)


ExtHook = Callable[[int, bytes], Any]


def _exported(name: str) -> Any:
    return getattr(langchain_core.messages, name)  # the package imports its names lazily


_set_slot = object.__setattr__  # as pydantic's own model_construct sets them


class _Rebuilt:
    """How to rebuild one LangChain message class from its stored fields."""

    __slots__ = ("cls", "extra", "fields", "private", "ready")

    def __init__(self, cls: type[BaseMessage]) -> None:
        self.cls = cls
        self.fields = frozenset(cls.model_fields)
        self.ready = False
        self.extra: dict[str, Any] | None = None
        self.private: dict[str, Any] | None = None

    def __call__(self, fields: dict[str, Any]) -> BaseMessage:
        """The message, from exactly its class's fields (as ``model_construct`` builds it).

        The instance ``model_construct`` gives (all fields set, the class's empty extras
        and default private attributes, learnt from one message it built), made the
        way it makes it but without looking at each field again: at about a third of
        the cost of a shallow copy of such an instance.
        """
        if not self.ready:
            built = self.cls.model_construct(**fields)
            self.extra, self.private = built.__pydantic_extra__, built.__pydantic_private__
            self.ready = True
        message = self.cls.__new__(self.cls)
        _set_slot(message, "__dict__", fields)
        _set_slot(message, "__pydantic_fields_set__", set(self.fields))
        _set_slot(message, "__pydantic_extra__", None if self.extra is None else dict(self.extra))
        _set_slot(
            message, "__pydantic_private__", None if self.private is None else dict(self.private)
        )
        return message


@cache
def _message_classes() -> dict[tuple[str, str], _Rebuilt]:
    """LangChain's message classes by stored (module, name)."""
    return {
        (cls.__module__, cls.__name__): _Rebuilt(cls)
        for cls in map(_exported, langchain_core.messages.__all__)
        if isinstance(cls, type) and issubclass(cls, BaseMessage)
    }


def _reading_messages_directly(stock: ExtHook) -> ExtHook:
    """``stock``, LangGraph's msgpack reader, with LangChain messages rebuilt directly."""
    classes = _message_classes()
    option = ormsgpack.OPT_NON_STR_KEYS

    def hook(code: int, data: bytes) -> Any:
        if code == EXT_PYDANTIC_V2:
            try:
                stored = ormsgpack.unpackb(data, ext_hook=hook, option=option)
                rebuilt = classes.get((stored[0], stored[1]))
                fields = stored[2]
                if rebuilt is not None and fields.keys() == rebuilt.fields:
                    return rebuilt(fields)
            except Exception:  # noqa: S110 - whatever it is, LangGraph's reader decides
                pass
        return stock(code, data)

    return hook


class MessageListSerializer(JsonPlusSerializer):
    """:class:`JsonPlusSerializer` that encodes each message of a message list once.

    Args:
        cache_bytes: Most bytes of encodings kept.
        **kwargs: As for :class:`JsonPlusSerializer`.
    """

    def __init__(self, *, cache_bytes: int = DEFAULT_CACHE_BYTES, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._kept: LRUCache[int, _Kept] = LRUCache(
            maxsize=cache_bytes, getsizeof=lambda kept: len(kept.encoded)
        )
        # The latest list written of each conversation, by its first message: the next
        # step's list starts with the same messages, whose encodings are taken as one.
        self._lists: LRUCache[int, _KeptList] = LRUCache(
            maxsize=cache_bytes, getsizeof=lambda kept: len(kept.body)
        )
        # Checkpoints may be written from several threads (a sync graph's executor).
        self._lock = threading.Lock()
        if not self._custom_unpack_ext_hook:
            self._unpack_ext_hook = _reading_messages_directly(self._unpack_ext_hook)

    def with_msgpack_allowlist(
        self, extra_allowlist: Iterable[tuple[str, ...] | type]
    ) -> JsonPlusSerializer:
        derived = super().with_msgpack_allowlist(extra_allowlist)
        if derived is not self and not derived._custom_unpack_ext_hook:
            derived._unpack_ext_hook = _reading_messages_directly(derived._unpack_ext_hook)
        return derived

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        if type(obj) is list and obj and isinstance(obj[0], BaseMessage):
            body = self._list_body(obj)
            if body is not None:
                return "msgpack", _array_header(len(obj)) + body
        return super().dumps_typed(obj)

    def _list_body(self, messages: list[Any]) -> bytes | None:
        """The encoded items of a list of messages (None: not all are messages, or one
        is not msgpack).

        A list that starts with the messages of the conversation's last list written,
        each message the same object with the same field values (by identity), reuses
        that list's encoded items and encodes only the messages after them; any other
        list is encoded message by message (each kept encoding reused).
        """
        key = id(messages[0])
        with self._lock:
            known = self._lists.get(key)
        start, body, fields = 0, b"", ()
        if known is not None and len(known.messages) <= len(messages):
            prefix = messages[: len(known.messages)]
            if _same_objects(prefix, known.messages):
                prefix_fields = _field_values(prefix)
                if _same_objects(prefix_fields, known.fields):
                    start, body, fields = len(prefix), known.body, known.fields
        rest = messages[start:]
        if not all(isinstance(message, BaseMessage) for message in rest):
            return None
        parts = [self._encoded(message) for message in rest]
        if any(part is None for part in parts):
            return None
        body = b"".join([body, *(part for part in parts if part is not None)])
        if len(body) <= (self._lists.maxsize or 0):
            kept = _KeptList(tuple(messages), fields + _field_values(rest), body)
            with self._lock:
                self._lists[key] = kept
        return body

    def _encoded(self, message: BaseMessage) -> bytes | None:
        """The message's msgpack encoding, kept or made (None: it is not msgpack)."""
        fields = tuple(message.__dict__.values())
        key = id(message)
        with self._lock:
            kept = self._kept.get(key)
        if kept is not None and kept.message is message and kept.ids == tuple(map(id, fields)):
            return kept.encoded
        kind, encoded = super().dumps_typed(message)
        if kind != "msgpack":
            return None
        if len(encoded) <= (self._kept.maxsize or 0):
            with self._lock:
                self._kept[key] = _Kept(message, fields, encoded)
        return encoded
