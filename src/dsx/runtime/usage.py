"""``dsx.track_usage()``: count the tokens and cost of every LM call in a block; prices.

Prices come from LiteLLM's table: ``litellm.model_cost`` when LiteLLM is loaded (custom
prices registered there included), otherwise the same table read from the JSON file
LiteLLM ships — once per process, without importing LiteLLM (which costs seconds).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from dsx.runtime.lm_base import UsageTracker, _trackers

__all__ = ["UsageReport", "cost", "track_usage"]


class UsageReport(UsageTracker):
    """Token usage per model and total cost, collected by :func:`track_usage`.

    Attributes:
        usage: ``{model: {"prompt_tokens": ..., "completion_tokens": ..., "total_tokens": ...}}``.
        cost: total cost in USD of the calls whose cost the provider (or LiteLLM) knew.
    """

    __slots__ = ()

    def get_total_tokens(self) -> dict[str, dict[str, int]]:
        """Usage per model (DSPy's name for :meth:`totals`)."""
        return self.totals()

    @property
    def total_tokens(self) -> int:
        """Total tokens across every model."""
        return sum(u.get("total_tokens", 0) for u in self.usage.values())

    def __repr__(self) -> str:
        return f"UsageReport(usage={self.totals()!r}, cost={self.cost!r})"


@contextlib.contextmanager
def track_usage() -> Iterator[UsageReport]:
    """Collect the token usage and cost of every LM call made inside the block.

    Calls made by nested modules count too (each module call merges its own usage into
    the enclosing tracker when it returns), in this thread or asyncio task and in tasks
    started from it. Cache hits are not counted: they cost nothing. When the block ends
    inside an outer ``track_usage`` or module call, its usage is added to that one as well.

    Example:
        >>> with dsx.track_usage() as usage:
        ...     program(question="...")
        >>> usage.get_total_tokens()
        {'openai/gpt-4o-mini': {'prompt_tokens': 120, 'completion_tokens': 8, 'total_tokens': 128}}
    """
    parent = _trackers.get()
    report = UsageReport()
    token = _trackers.set(report)
    try:
        yield report
    finally:
        _trackers.reset(token)
        if parent is not None:
            parent.merge(report)


# -- prices --------------------------------------------------------------------------------------

Price = tuple[float, float, float | None]  # USD per token: input, output, cached input

#: Prices per model string, looked up once.
_prices: dict[str, Price | None] = {}
#: The bundled table, read on first use: ``{key: (input, output, cached input, provider)}``.
_bundled: dict[str, tuple[float, float, float | None, str]] | None = None


def cost(model: str, usage: Any) -> float | None:
    """USD for ``usage`` (an OpenAI-style ``usage`` object) answered by ``model``; ``None``
    when the model has no price. Cached prompt tokens are charged at the cached rate."""
    if not isinstance(usage, dict):
        return None
    try:
        price = _prices[model]
    except KeyError:
        price = _prices[model] = _price_of(model)
    if price is None:
        return None
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    cached = 0
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and price[2] is not None:
        cached = min(details.get("cached_tokens") or 0, prompt)
    total = (prompt - cached) * price[0] + completion * price[1]
    if cached:
        total += cached * (price[2] or 0.0)
    return float(total)


def _price_of(model: str) -> Price | None:
    from dsx.runtime._openai_transport import split_model  # the lean transport's prefixes

    provider, name = split_model(model)
    keys = [model] if provider is None else [model, name]
    for key in keys:
        entry = _entry(key)
        if entry is None:
            continue
        inp, out, cached, owner = entry
        # A bare name belongs to its provider ("gpt-4o-mini" is OpenAI's).
        if (
            key == name
            and provider is not None
            and owner
            not in (
                provider,
                f"text-completion-{provider}",
            )
        ):
            continue
        return inp, out, cached
    return None


def _entry(key: str) -> tuple[float, float, float | None, str] | None:
    litellm = sys.modules.get("litellm")
    table = getattr(litellm, "model_cost", None)
    if isinstance(table, dict):
        return _compact(table.get(key))
    global _bundled
    if _bundled is None:
        _bundled = _read_bundled()
    return _bundled.get(key)


def _compact(entry: Any) -> tuple[float, float, float | None, str] | None:
    if not isinstance(entry, dict):
        return None
    inp, out = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
    if not (isinstance(inp, int | float) and isinstance(out, int | float)):
        return None
    cached = entry.get("cache_read_input_token_cost")
    return (
        float(inp),
        float(out),
        float(cached) if isinstance(cached, int | float) else None,
        str(entry.get("litellm_provider", "")),
    )


def _read_bundled() -> dict[str, tuple[float, float, float | None, str]]:
    """LiteLLM's bundled price table, without importing LiteLLM: ~20 ms once (a 3.5 MB
    file); only the prices are kept."""
    import importlib.util
    import json
    from pathlib import Path

    try:  # find_spec locates the package without importing it
        spec = importlib.util.find_spec("litellm")
        for location in list(spec.submodule_search_locations or []) if spec else []:
            path = Path(location) / "model_prices_and_context_window_backup.json"
            if path.is_file():
                doc = json.loads(path.read_bytes())
                if isinstance(doc, dict):
                    table = {k: _compact(v) for k, v in doc.items()}
                    return {k: v for k, v in table.items() if v is not None}
    except (ImportError, OSError, ValueError):
        pass
    return {}
