"""What a model call costs, from its token usage and a small table of prices.

Prices are in US dollars per million tokens, by model name (without the provider
prefix). The built-in table holds a few common models at their published list prices;
``BUILDER_MODEL_PRICES`` adds models or replaces entries (JSON, e.g.
``{"llama3.1": {"input": 0, "output": 0}}``). A model missing from both has no cost:
runs still work, only the cost and a money budget are unavailable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from builder.settings import ModelPrice

__all__ = ["DEFAULT_PRICES", "ModelPrice", "call_cost", "price_for"]


DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4.1": ModelPrice(input=2.0, output=8.0, cache_read=0.5),
    "gpt-4.1-mini": ModelPrice(input=0.4, output=1.6, cache_read=0.1),
    "gpt-4.1-nano": ModelPrice(input=0.1, output=0.4, cache_read=0.025),
    "gpt-4o": ModelPrice(input=2.5, output=10.0, cache_read=1.25),
    "gpt-4o-mini": ModelPrice(input=0.15, output=0.6, cache_read=0.075),
    "claude-sonnet-4-0": ModelPrice(input=3.0, output=15.0, cache_read=0.3, cache_write=3.75),
    "claude-3-7-sonnet-latest": ModelPrice(
        input=3.0, output=15.0, cache_read=0.3, cache_write=3.75
    ),
    "claude-3-5-haiku-latest": ModelPrice(input=0.8, output=4.0, cache_read=0.08, cache_write=1.0),
}


def price_for(model: str | None, overrides: Mapping[str, ModelPrice]) -> ModelPrice | None:
    """The price of ``model`` (an override first), or None when unknown."""
    if not model:
        return None
    name = model.split(":", 1)[1] if ":" in model else model
    return overrides.get(name) or DEFAULT_PRICES.get(name)


def call_cost(usage: Mapping[str, Any], price: ModelPrice) -> float:
    """Dollars for one call's usage (``input_tokens`` counts cached input too).

    Args:
        usage: ``input_tokens``, ``output_tokens``, ``cache_read_tokens`` and
            ``cache_write_tokens``, as a step's usage records them.
        price: The model's price.
    """
    read = int(usage.get("cache_read_tokens", 0))
    written = int(usage.get("cache_write_tokens", 0))
    fresh = max(int(usage.get("input_tokens", 0)) - read - written, 0)
    dollars = (
        fresh * price.input
        + read * (price.input if price.cache_read is None else price.cache_read)
        + written * (price.input if price.cache_write is None else price.cache_write)
        + int(usage.get("output_tokens", 0)) * price.output
    )
    return dollars / 1_000_000
