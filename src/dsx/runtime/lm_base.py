"""The LM interface every language model in dsx implements.

A concrete LM implements :meth:`BaseLM.forward` (and, when it can do real async I/O,
:meth:`BaseLM.aforward`) returning an :class:`LMResponse`. Predictors call
:meth:`BaseLM.request` / :meth:`BaseLM.arequest`, which merge default parameters, record
history and usage, and enforce the test switch that forbids real requests.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from dsx.errors import RealLMCallForbidden
from dsx.runtime import callbacks as _cb
from dsx.runtime._structured_output import describe as describe_format
from dsx.runtime.settings import settings

__all__ = [
    "GLOBAL_HISTORY",
    "BaseLM",
    "LMResponse",
    "UsageTracker",
    "inspect_history",
    "pretty_print_history",
]

Message = dict[str, Any]

#: The last calls made by any LM in this process (bounded).
GLOBAL_HISTORY: deque[dict[str, Any]] = deque(maxlen=200)
#: The modules whose calls are running here, outermost first: an LM call is recorded in
#: each one's ``history`` (set by ``Module.__call__``).
_callers: contextvars.ContextVar[tuple[Any, ...]] = contextvars.ContextVar(
    "dsx_caller_modules", default=()
)


@dataclass(slots=True)
class LMResponse:
    """What one LM request produced.

    Attributes:
        outputs: the text of each choice (``n`` of them).
        usage: token counts (``prompt_tokens``, ``completion_tokens``, ``total_tokens``).
        model: the model that answered.
        cost: cost in USD when known.
        cached: whether the answer came from the cache.
        structured_output: how the request asked for JSON, when it did: ``"json_schema"``,
            ``"json_object_schema"``, ``"json_object"`` or ``"text"`` (prompt only), after
            :class:`dsx.LM` negotiated it with the endpoint.
        finish_reasons: why each choice ended (``"stop"``, ``"length"``,
            ``"content_filter"``, ...), when the provider said; ``[]`` when unknown.
    """

    outputs: list[str]
    usage: dict[str, int] = field(default_factory=dict)
    model: str = ""
    cost: float | None = None
    cached: bool = False
    raw: Any = None
    structured_output: str | None = None
    finish_reasons: list[str | None] = field(default_factory=list)


class UsageTracker:
    """Accumulates token usage per model. Thread-safe: a module's sync sub-calls may run in
    worker threads (Parallel, Evaluate) and all add to the same tracker."""

    __slots__ = ("_lock", "cost", "usage")

    def __init__(self) -> None:
        self.usage: dict[str, dict[str, int]] = {}
        self.cost = 0.0
        self._lock = threading.Lock()

    def add(self, model: str, usage: dict[str, int], cost: float | None = None) -> None:
        if not usage and not cost:
            return
        with self._lock:
            slot = self.usage.get(model)
            if slot is None:
                slot = self.usage[model] = {}
            for key, value in usage.items():
                if isinstance(value, int | float):
                    slot[key] = slot.get(key, 0) + value
            if cost:
                self.cost += cost

    def merge(self, other: UsageTracker) -> None:
        for model, usage in other.totals().items():
            self.add(model, usage)
        with self._lock:
            self.cost += other.cost

    def totals(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {model: dict(usage) for model, usage in self.usage.items()}


#: The tracker LM usage is added to: the innermost module call (or ``track_usage``) in
#: progress. Each module call merges its tracker into its parent's when it returns.
_trackers: contextvars.ContextVar[UsageTracker | None] = contextvars.ContextVar(
    "dsx_usage_tracker", default=None
)

# Set by ``dsx.testing.forbid_real_lm_requests``; checked by LMs that talk to providers.
_forbid_real_requests = False


def _set_forbid_real_requests(value: bool) -> bool:
    global _forbid_real_requests
    previous = _forbid_real_requests
    _forbid_real_requests = value
    return previous


class BaseLM:
    """Base class of every LM.

    Args:
        model: model name, e.g. ``"openai/gpt-4o-mini"``.
        model_type: ``"chat"`` (messages) or ``"text"`` (a single prompt string).
        **kwargs: default request parameters (``temperature``, ``max_tokens``, ...).
    """

    #: True for LMs that send requests to a provider (the test switch applies to them).
    is_real: ClassVar[bool] = False
    #: How many calls each LM keeps in its own history.
    history_size: ClassVar[int] = 100
    #: Callbacks of this LM only (``LM(..., callbacks=[...])``); see ``dsx.BaseCallback``.
    callbacks = _cb.CallbackList()

    def __init__(
        self, model: str, *, model_type: Literal["chat", "text"] = "chat", **kwargs: Any
    ) -> None:
        callbacks = kwargs.pop("callbacks", None)
        if callbacks:
            self.callbacks = callbacks
        self.model = model
        self.model_type = model_type
        self.kwargs: dict[str, Any] = kwargs
        self.history: deque[dict[str, Any]] = deque(maxlen=self.history_size)
        self.num_calls = 0

    @property
    def calls(self) -> int:
        """How many requests this LM has answered."""
        return self.num_calls

    # -- to implement -------------------------------------------------------------------
    def forward(self, messages: list[Message], **kwargs: Any) -> LMResponse:
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    async def aforward(self, messages: list[Message], **kwargs: Any) -> LMResponse:
        """Async request. In-process LMs answer directly; network LMs override this."""
        return self.forward(messages, **kwargs)

    # -- what predictors call -----------------------------------------------------------
    def check_allowed(self, api_base: str | None = None) -> None:
        """Raise when real requests are forbidden (loopback endpoints stay allowed)."""
        if self.is_real and _forbid_real_requests and not _is_loopback(api_base):
            raise RealLMCallForbidden(
                f"A real request to {self.model!r} was made while real LM requests are "
                "forbidden (dsx.testing.forbid_real_lm_requests). Use dsx.testing.DummyLM "
                "or FunctionLM, or point api_base at 127.0.0.1."
            )

    def request(self, messages: list[Message], **kwargs: Any) -> LMResponse:
        if _cb.enabled:
            hooks = _cb.active(self)
            if hooks:
                inputs = {"prompt": None, "messages": messages, "kwargs": kwargs}
                return _cb.call_sync("lm", self, hooks, inputs, self._request, messages, kwargs)
        return self._request(messages, kwargs)

    async def arequest(self, messages: list[Message], **kwargs: Any) -> LMResponse:
        if _cb.enabled:
            hooks = _cb.active(self)
            if hooks:
                inputs = {"prompt": None, "messages": messages, "kwargs": kwargs}
                return await _cb.call_async(
                    "lm", self, hooks, inputs, self._arequest, messages, kwargs
                )
        return await self._arequest(messages, kwargs)

    def _request(self, messages: list[Message], kwargs: dict[str, Any]) -> LMResponse:
        params = {**self.kwargs, **kwargs} if kwargs else self.kwargs
        start = time.time()
        response = self.forward(messages, **params)
        self._record(messages, params, response, start)
        return response

    async def _arequest(self, messages: list[Message], kwargs: dict[str, Any]) -> LMResponse:
        params = {**self.kwargs, **kwargs} if kwargs else self.kwargs
        start = time.time()
        response = await self.aforward(messages, **params)
        self._record(messages, params, response, start)
        return response

    def _record(
        self,
        messages: list[Message],
        params: dict[str, Any],
        response: LMResponse,
        start: float,
    ) -> None:
        entry = {
            "model": response.model or self.model,
            "messages": messages,
            "kwargs": params,
            "outputs": response.outputs,
            "usage": response.usage,
            "cost": response.cost,
            "cached": response.cached,
            "structured_output": response.structured_output,
            "timestamp": start,
            "duration": time.time() - start,
        }
        self.num_calls += 1
        if not settings.disable_history:
            self.history.append(entry)
            GLOBAL_HISTORY.append(entry)
            callers = _callers.get()
            if callers:
                size = settings.max_history_size
                for module in callers:  # each module whose call made this one (DSPy's)
                    module._add_history(entry, size)
        tracker = _trackers.get()
        if tracker is not None and not response.cached:
            tracker.add(response.model or self.model, response.usage, response.cost)

    # -- DSPy-style direct calls ----------------------------------------------------------
    def __call__(
        self, prompt: str | None = None, messages: list[Message] | None = None, **kwargs: Any
    ) -> list[str]:
        return self.request(_to_messages(prompt, messages), **kwargs).outputs

    async def acall(
        self, prompt: str | None = None, messages: list[Message] | None = None, **kwargs: Any
    ) -> list[str]:
        return (await self.arequest(_to_messages(prompt, messages), **kwargs)).outputs

    # -- misc ---------------------------------------------------------------------------
    def copy(self, **kwargs: Any) -> BaseLM:
        """A new LM with the same settings, overridden by ``kwargs``."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.kwargs = {**self.kwargs, **{k: v for k, v in kwargs.items() if k != "model"}}
        if "model" in kwargs:
            new.model = kwargs["model"]
        new.history = deque(maxlen=self.history_size)
        new.num_calls = 0
        if "_callbacks" in new.__dict__:  # its own list: appending to one leaves the other
            new.callbacks = new.__dict__["_callbacks"]
        return new

    def dump_state(self) -> dict[str, Any]:
        """Settings worth saving with a program (never secrets or endpoints)."""
        from dsx.runtime.state import LM_ENDPOINT_KEYS  # one list: what state may not carry

        return {
            "model": self.model,
            "model_type": self.model_type,
            **{k: v for k, v in self.kwargs.items() if k not in LM_ENDPOINT_KEYS and _jsonable(v)},
        }

    def inspect_history(self, n: int = 1) -> str:
        return pretty_print_history(list(self.history)[-n:])

    def __deepcopy__(self, memo: dict[int, Any]) -> BaseLM:
        # LMs hold clients, caches and history: copies of a program share them.
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"


def _to_messages(prompt: str | None, messages: list[Message] | None) -> list[Message]:
    if messages is not None:
        return messages
    if prompt is None:
        raise TypeError("Pass either prompt= or messages= to the LM")
    return [{"role": "user", "content": prompt}]


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)


def _is_loopback(api_base: str | None) -> bool:
    if not api_base:
        return False
    from urllib.parse import urlparse

    host = urlparse(api_base).hostname or ""
    if host == "localhost":
        return True
    import ipaddress

    try:  # an address, not a name that merely starts with "127." (127.0.0.1.evil.example)
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def pretty_print_history(entries: list[dict[str, Any]]) -> str:
    """Render history entries as readable text (what ``inspect_history`` prints)."""
    out: list[str] = []
    for entry in entries:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry["timestamp"]))
        cached = " (cached)" if entry.get("cached") else ""
        mode = entry.get("structured_output")
        shown = f" · response_format: {describe_format(mode)}" if mode else ""
        out.append(
            f"\n=== {stamp} · {entry['model']}{cached} · {entry['duration'] * 1000:.1f} ms"
            f"{shown} ==="
        )
        for msg in entry["messages"]:
            out.append(f"\n--- {msg['role']} ---")
            content = msg.get("content")
            if isinstance(content, list):
                for part in content:
                    if part.get("type") == "text":
                        out.append(part["text"])
                    elif part.get("type") == "image_url":
                        url = part["image_url"]["url"]
                        out.append(f"<image {url[:60]}{'…' if len(url) > 60 else ''}>")
            else:
                out.append(str(content))
        for i, text in enumerate(entry["outputs"]):
            label = "response" if len(entry["outputs"]) == 1 else f"response {i + 1}"
            out.append(f"\n--- {label} ---\n{text}")
        usage = entry.get("usage") or {}
        if usage:
            parts = ", ".join(f"{k}={v}" for k, v in usage.items() if isinstance(v, int))
            cost = f", cost=${entry['cost']:.6f}" if entry.get("cost") else ""
            out.append(f"\n[usage: {parts}{cost}]")
    return "\n".join(out)


def inspect_history(n: int = 1) -> str:
    """Print (and return) the last ``n`` LM calls made in this process."""
    text = pretty_print_history(list(GLOBAL_HISTORY)[-n:])
    print(text)
    return text
