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
import difflib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

from dsx.errors import DsxError, UnknownSettingError

__all__ = [
    "ConfigureOwnerError",
    "Settings",
    "configure",
    "context",
    "load_settings",
    "settings",
]


def _otel_env_wants_tracing() -> bool:
    """Whether the standard ``OTEL_*`` variables ask for traces (the default of ``tracing``)."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


# Every setting and its default: the one list configure()/context() check names against.
_DEFAULTS: dict[str, Any] = {
    "lm": None,
    "adapter": None,
    "rm": None,  # the retriever dsx.Retrieve uses
    "trace": None,  # a list when traces are being recorded (optimizers, assertions)
    "callbacks": (),
    # OpenTelemetry spans: True (the global or OTEL_*-configured provider), a TracerProvider
    # or Tracer, or None/False; see dsx.runtime._otel
    "tracing": _otel_env_wants_tracing() or None,
    # False: a predictor's LM requests are recorded on the predictor's span (one span per
    # predictor call instead of two: compact traces for hot paths)
    "tracing_lm_spans": True,
    "track_usage": False,
    "max_backtracks": 2,
    "max_errors": 10,
    "num_threads": 8,
    # set by Refine for the predictor calls of one attempt
    "config_override": None,
    "hint": None,
    # DSPy's switches: a sync call of an async tool runs it to completion (False refuses),
    # and a text/media input given another kind of value logs a warning once per field
    "allow_tool_async_sync_conversion": True,
    "warn_on_type_mismatch": True,
    # how many callables dsx.asyncify runs in worker threads at once, per event loop
    "async_max_workers": 8,
    # DSPy's history switches: record no LM call in any history, and how many calls each
    # module's own history (module.history) keeps (0: none)
    "disable_history": False,
    "max_history_size": 10000,
}

_EMPTY: MappingProxyType[str, Any] = MappingProxyType({})
_overrides: contextvars.ContextVar[MappingProxyType[str, Any]] = contextvars.ContextVar(
    "dsx_settings_overrides", default=_EMPTY
)


class ConfigureOwnerError(DsxError, RuntimeError):
    """``configure`` called from a thread (or asyncio task) other than the one that called
    it first; as in DSPy, other threads and tasks use ``dsx.context``."""


class Settings:
    """Read access to the effective settings: ``settings.lm``, ``settings.get("adapter")``."""

    def __init__(self) -> None:
        self._defaults = dict(_DEFAULTS)
        self._lock = threading.Lock()
        # The thread, and the asyncio task if any, whose configure() call came first: the
        # only ones that may change the process defaults again (DSPy's rule).
        self._owner_thread: int | None = None
        self._owner_task: Any = None

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
        self._check(kwargs)
        self._claim()
        _watch(kwargs)
        with self._lock:
            self._defaults.update(kwargs)

    def _claim(self) -> None:
        """Make the caller the owner of the defaults, or check that it is."""
        import asyncio

        thread = threading.get_ident()
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no running event loop
            task = None
        with self._lock:
            if self._owner_thread is None:
                self._owner_thread = thread
            elif self._owner_thread != thread:
                raise ConfigureOwnerError(
                    "dsx.configure(...) changes the process-wide defaults and may be called "
                    "only from the thread that called it first; in other threads use "
                    "`with dsx.context(...)`, which applies to that thread only"
                )
            if task is None:
                return
            if self._owner_task is None:
                self._owner_task = task
            elif self._owner_task is not task and not _in_ipython():
                raise ConfigureOwnerError(
                    "dsx.configure(...) may be called only from the asyncio task that called "
                    "it first; in other tasks use `with dsx.context(...)`, which applies to "
                    "that task only"
                )

    def declare(self, name: str, default: Any = None) -> None:
        """Add a setting (for extensions); ``configure``/``context`` then accept ``name``."""
        with self._lock:
            _DEFAULTS.setdefault(name, default)
            self._defaults.setdefault(name, _DEFAULTS[name])

    def _check(self, kwargs: dict[str, Any]) -> None:
        # A misspelt name would otherwise be stored and silently never read.
        unknown = [k for k in kwargs if k not in self._defaults]
        if not unknown:
            return
        name = unknown[0]
        close = difflib.get_close_matches(name, list(self._defaults), n=1)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise UnknownSettingError(
            f"dsx has no setting `{name}`.{hint} The settings are: "
            f"{', '.join(k for k in self._defaults if k not in _INTERNAL)}. An extension can "
            f"add its own with dsx.settings.declare({name!r}, default)."
        )

    def snapshot(self) -> dict[str, Any]:
        """The effective settings as a plain dict (defaults with overrides applied)."""
        merged = dict(self._defaults)
        merged.update(_overrides.get())
        return merged

    @contextlib.contextmanager
    def context(self, **kwargs: Any) -> Iterator[None]:
        self._check(kwargs)
        _watch(kwargs)
        merged = dict(_overrides.get())
        merged.update(kwargs)
        token = _overrides.set(MappingProxyType(merged))
        try:
            yield
        finally:
            _overrides.reset(token)

    def save(
        self,
        path: str | os.PathLike[str],
        modules_to_serialize: list[Any] | None = None,
        exclude_keys: list[str] | None = None,
        *,
        allow_pickle: bool = False,
    ) -> None:
        """Save the effective settings (LM, adapter, callbacks, ...) to ``path``, as DSPy's
        ``settings.save`` does: with pickle, so it needs ``allow_pickle=True`` (loading it
        runs code; :func:`load_settings` asks for the same opt-in). ``exclude_keys`` leaves
        settings out. An LM is saved without its API key and headers (with a warning); set
        them in the environment where the settings are loaded.
        """
        import pickle

        from dsx.runtime._files import atomic_write

        if not allow_pickle:
            raise DsxError(
                "dsx.settings.save writes the settings with pickle (LMs, adapters and callbacks "
                "are objects), and loading a pickle runs code: pass allow_pickle=True to opt "
                "in, and load only files you wrote"
            )
        if modules_to_serialize:
            raise DsxError(
                "dsx.settings.save(modules_to_serialize=...) is DSPy's cloudpickle option; dsx "
                "saves by reference with pickle: the modules must be importable where the "
                "settings are loaded"
            )
        skip = set(exclude_keys or ()) | _INTERNAL
        data = {k: v for k, v in self.snapshot().items() if k not in skip}
        stripped = []
        for key, value in data.items():  # an LM's key and headers stay out of the file
            secrets = [a for a in ("api_key", "headers") if getattr(value, a, None)]
            if secrets and callable(getattr(value, "copy", None)):
                data[key] = value.copy(**dict.fromkeys(secrets))
                stripped.append(f"{key} ({', '.join(secrets)})")
        if stripped:
            import warnings

            warnings.warn(
                f"{path}: saved without the secrets of {'; '.join(stripped)}: set them in the "
                "environment (or on the LM) where the settings are loaded",
                UserWarning,
                stacklevel=2,
            )
        try:
            blob = pickle.dumps(data)
        except Exception as exc:
            bad = [k for k, v in data.items() if not _picklable(v)]
            raise DsxError(
                f"dsx.settings.save: cannot pickle the setting(s) {', '.join(bad) or '?'} "
                f"({exc}); leave them out with exclude_keys={bad!r} and set them again after "
                "loading"
            ) from None
        atomic_write(Path(path), blob)

    def reset(self) -> None:
        """Restore the defaults (used by tests); declared settings stay declared. Any thread
        may then configure first."""
        with self._lock:
            self._defaults = dict(_DEFAULTS)
            self._owner_thread = self._owner_task = None


def _picklable(value: Any) -> bool:
    import pickle

    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


def load_settings(path: str | os.PathLike[str], allow_pickle: bool = False) -> dict[str, Any]:
    """The settings :meth:`Settings.save` wrote, as a dict: apply them with
    ``dsx.configure(**dsx.load_settings(path, allow_pickle=True))`` (DSPy's
    ``dspy.load_settings``). Needs ``allow_pickle=True``: unpickling runs code."""
    import pickle

    if not allow_pickle:
        raise DsxError(
            f"{path}: settings are a pickle, and loading one runs code. Pass "
            "allow_pickle=True only for a file you trust (one you saved)."
        )
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh)
    except OSError as exc:
        raise DsxError(f"Cannot read settings {path}: {exc.strerror or exc}") from None
    except Exception as exc:
        raise DsxError(
            f"{path} is not settings saved by dsx.settings.save ({type(exc).__name__}: {exc})"
        ) from None
    if not isinstance(data, dict):
        raise DsxError(f"{path} is not settings saved by dsx.settings.save (not a dict)")
    return data


def _in_ipython() -> bool:
    """Whether this runs in IPython/Jupyter, where each cell is a new task (DSPy allows it)."""
    import sys

    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    try:
        return get is not None and get() is not None
    except Exception:
        return False


_INTERNAL = frozenset({"trace", "config_override", "hint"})


def _watch(kwargs: dict[str, Any]) -> None:
    """Turn the call hooks on when callbacks are configured (they cost nothing until then)."""
    if kwargs.get("callbacks"):
        from dsx.runtime import callbacks

        callbacks.enable()
    if kwargs.get("tracing"):
        from dsx.runtime import _otel, callbacks

        callbacks.add_internal(_otel.observer())


settings = Settings()


def configure(**kwargs: Any) -> None:
    """Set process-wide defaults, e.g. ``dsx.configure(lm=dsx.LM("openai/gpt-4o-mini"))``.

    Known keys include ``lm``, ``adapter``, ``rm``, ``callbacks``, ``track_usage``,
    ``max_backtracks``, ``max_errors``, ``num_threads``. An unknown key raises
    :class:`UnknownSettingError` with a suggestion (``num_thread`` → ``num_threads``);
    extensions add their own with ``dsx.settings.declare(name, default)``.
    """
    settings.configure(**kwargs)


def context(**kwargs: Any) -> contextlib.AbstractContextManager[None]:
    """Override settings for the current thread or asyncio task only.

    The names are checked as for :func:`configure`.

    Example:
        >>> with dsx.context(lm=other_lm):
        ...     program(question="...")
    """
    return settings.context(**kwargs)
