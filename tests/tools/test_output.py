"""truncate: bounded results that say how much was cut."""

from __future__ import annotations

import pytest

from builder.tools.output import truncate


def test_short_text_is_unchanged() -> None:
    assert truncate("abc", 200) == "abc"
    assert truncate("x" * 200, 200) == "x" * 200


@pytest.mark.parametrize("size", [201, 1000, 1_000_000])
def test_long_text_keeps_head_and_tail_within_the_limit(size: int) -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(size))
    result = truncate(text, 200)
    assert len(result) <= 200
    head, note, tail = result.split("\n")
    assert note == f"[… {size - len(head) - len(tail):,} characters cut …]"
    assert text.startswith(head) and text.endswith(tail)
    assert len(head) > len(tail) > 0
