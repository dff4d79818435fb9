"""``dsx.track_usage()``: count the tokens and cost of every LM call in a block."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from dsx.runtime.lm_base import UsageTracker, _trackers

__all__ = ["UsageReport", "track_usage"]


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
