"""The public API is exactly what ``builder.__all__`` says, sorted."""

from __future__ import annotations

import builder


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in vars(builder) if not name.startswith("_")} - {"annotations"}
    # Submodules are importable but are not part of the flat public API.
    modules = {name for name in public if type(getattr(builder, name)).__name__ == "module"}
    assert builder.__all__ == sorted(builder.__all__)
    assert set(builder.__all__) - {"__version__"} == public - modules


def test_every_exported_name_resolves() -> None:
    for name in builder.__all__:
        assert getattr(builder, name) is not None, name
