"""The JSON schema of a run's state (the web-builder graph's channels), for APIs that
describe the graph they run."""

from __future__ import annotations

import functools
import types
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

import typing_extensions
from pydantic import TypeAdapter

from builder.graphs.state import WebBuilderState

__all__ = ["state_schema"]


@functools.cache
def state_schema() -> dict[str, Any]:
    """The JSON schema of the web-builder graph's state."""
    schema: dict[str, Any] = TypeAdapter(_portable(WebBuilderState)).json_schema()
    return schema


def _portable(tp: Any) -> Any:
    """``tp`` with every ``typing.TypedDict`` rebuilt as a ``typing_extensions`` one.

    Pydantic only makes schemas of the latter before Python 3.12; reducers
    (``Annotated`` metadata) are dropped, they do not change the shape.
    """
    if typing_extensions.is_typeddict(tp):
        hints = {key: _portable(value) for key, value in get_type_hints(tp).items()}
        rebuilt = typing_extensions.TypedDict(tp.__name__, hints, total=tp.__total__)  # type: ignore[misc]
        rebuilt.__doc__ = tp.__doc__
        return rebuilt
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return _portable(args[0])
    if origin in (Union, types.UnionType):
        return Union[tuple(_portable(arg) for arg in args)]  # noqa: UP007
    if origin in (list, dict):
        return origin[tuple(_portable(arg) for arg in args)]
    return tp
