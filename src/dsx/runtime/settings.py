"""Process defaults and per-task overrides.

``dsx.configure(...)`` sets process-wide defaults. ``with dsx.context(...)`` overrides them
for the current thread or asyncio task only: overrides live in a :class:`contextvars.ContextVar`,
so each thread and each task sees its own, and a new thread starts from the defaults.
Lookups are a dict probe on the override layer and then on the defaults — cheap enough
for the per-call path.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

__all__ = ["Settings", "configure", "context", "settings"]

_DEFAULTS: dict[str, Any] = {
    "lm": None,
    "adapter": None,
    "trace": None,  # a list when traces are being recorded (optimizers, assertions)
    "callbacks": (),
    "track_usage": False,
    "max_backtracks": 2,
    "max_errors": 10,
    "num_threads": 8,
}

_EMPTY: MappingProxyType[str, Any] = MappingProxyType({})
_overrides: contextvars.ContextVar[MappingProxyType[str, Any]] = contextvars.ContextVar(
    "dsx_settings_overrides", default=_EMPTY
)


class Settings:
    """Read access to the effective settings: ``settings.lm``, ``settings.get("adapter")``."""

    def __init__(self) -> None:
        self._defaults = dict(_DEFAULTS)
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        over = _overrides.get()
        if key in over:
            return over[key]
        return self._defaults.get(key, default)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        over = _overrides.get()
        if key in over:
            return over[key]
        try:
            return self._defaults[key]
        except KeyError:
            raise AttributeError(f"dsx has no setting {key!r}") from None

    def configure(self, **kwargs: Any) -> None:
        with self._lock:
            self._defaults.update(kwargs)

    def snapshot(self) -> dict[str, Any]:
        """The effective settings as a plain dict (defaults with overrides applied)."""
        merged = dict(self._defaults)
        merged.update(_overrides.get())
        return merged

    @contextlib.contextmanager
    def context(self, **kwargs: Any) -> Iterator[None]:
        merged = dict(_overrides.get())
        merged.update(kwargs)
        token = _overrides.set(MappingProxyType(merged))
        try:
            yield
        finally:
            _overrides.reset(token)

    def reset(self) -> None:
        """Restore the built-in defaults (used by tests)."""
        with self._lock:
            self._defaults = dict(_DEFAULTS)


settings = Settings()


def configure(**kwargs: Any) -> None:
    """Set process-wide defaults, e.g. ``dsx.configure(lm=dsx.LM("openai/gpt-4o-mini"))``.

    Known keys include ``lm``, ``adapter``, ``callbacks``, ``track_usage``,
    ``max_backtracks``, ``num_threads``. Unknown keys are kept and readable through
    ``dsx.settings`` so that extensions can add their own.
    """
    settings.configure(**kwargs)


def context(**kwargs: Any) -> contextlib.AbstractContextManager[None]:
    """Override settings for the current thread or asyncio task only.

    Example:
        >>> with dsx.context(lm=other_lm):
        ...     program(question="...")
    """
    return settings.context(**kwargs)
