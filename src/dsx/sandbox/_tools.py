"""Host tools made callable from guest code.

A tool stays on the host. The guest gets a stub with the tool's real signature (built
from a JSON description, never from the tool's source); calling it sends the arguments
as JSON, the host runs the tool, and the result or exception crosses back.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import datetime
import enum
import inspect
import json
import keyword
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from dsx.sandbox._types import TOOL_RECORD_LIMIT, ToolCall

__all__ = ["RESERVED_NAMES", "Tool", "ToolOutcome", "clip", "dumps", "normalize_tools"]

#: Names the guest namespace defines itself.
RESERVED_NAMES = frozenset({"SUBMIT", "ToolError"})

_KINDS = {
    inspect.Parameter.POSITIONAL_ONLY: "po",
    inspect.Parameter.POSITIONAL_OR_KEYWORD: "pk",
    inspect.Parameter.VAR_POSITIONAL: "var",
    inspect.Parameter.KEYWORD_ONLY: "kw",
    inspect.Parameter.VAR_KEYWORD: "varkw",
}


def _default(obj: Any) -> Any:
    """JSON for the common non-JSON types tools return; anything else is an error."""
    if hasattr(obj, "model_dump") and callable(obj.model_dump):  # pydantic models
        return obj.model_dump(mode="json")
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, datetime.date | datetime.time):
        return obj.isoformat()
    if isinstance(obj, PurePath):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps(obj: Any) -> str:
    """Compact JSON (pure ASCII, so never a raw newline) with :func:`_default`."""
    return json.dumps(obj, default=_default, separators=(",", ":"))


def clip(json_text: str) -> str:
    """The start of a JSON text too long for a :class:`ToolCall` record, marked as cut."""
    return f"{json_text[:TOOL_RECORD_LIMIT]}...[truncated: {len(json_text)} characters]"


def _check_name(name: str, what: str) -> None:
    if not (isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)):
        raise ValueError(f"{what} {name!r} is not a valid Python identifier")
    if name.startswith("__dsx"):
        raise ValueError(f"{what} {name!r} uses the reserved prefix '__dsx'")


def _spec(name: str, fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no signature
        sig = inspect.Signature(
            [
                inspect.Parameter("args", inspect.Parameter.VAR_POSITIONAL),
                inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD),
            ]
        )
    params: list[dict[str, Any]] = []
    annotations: dict[str, str] = {}
    for p in sig.parameters.values():
        _check_name(p.name, f"parameter of tool {name}:")
        entry: dict[str, Any] = {"name": p.name, "kind": _KINDS[p.kind]}
        if p.default is not inspect.Parameter.empty:
            entry["has_default"] = True
            try:  # shown in the guest's signature when JSON; else the host fills it in
                json.dumps(p.default)
                entry["default"] = p.default
            except (TypeError, ValueError):
                pass
        if p.annotation is not inspect.Parameter.empty:
            annotations[p.name] = _annotation_text(p.annotation)
        params.append(entry)
    if sig.return_annotation is not inspect.Signature.empty:
        annotations["return"] = _annotation_text(sig.return_annotation)
    doc = inspect.getdoc(fn) or ""
    return {"name": name, "params": params, "doc": doc[:4000], "annotations": annotations}


def _annotation_text(annotation: Any) -> str:
    # Under `from __future__ import annotations` they are already text.
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


@dataclass(frozen=True, slots=True)
class Tool:
    """A host callable and the JSON description its guest stub is built from."""

    name: str
    fn: Callable[..., Any]
    spec: dict[str, Any]

    @classmethod
    def create(cls, name: str, fn: Callable[..., Any]) -> Tool:
        _check_name(name, "tool name")
        if name in RESERVED_NAMES:
            raise ValueError(f"tool name {name!r} is reserved by the sandbox")
        if not callable(fn):
            raise TypeError(f"tool {name!r} is not callable: {fn!r}")
        return cls(name, fn, _spec(name, fn))


def normalize_tools(
    tools: Mapping[str, Callable[..., Any]] | Iterable[Callable[..., Any]] | None,
) -> dict[str, Tool]:
    """Tools by name, from a mapping or from callables named by ``__name__``."""
    if not tools:
        return {}
    pairs: Iterable[tuple[str, Callable[..., Any]]]
    if isinstance(tools, Mapping):
        pairs = tools.items()
    else:
        pairs = ((getattr(fn, "__name__", ""), fn) for fn in tools)
    out: dict[str, Tool] = {}
    for name, fn in pairs:
        if isinstance(fn, Tool):
            out[name] = fn
            continue
        out[name] = Tool.create(name, fn)
    return out


def _error_payload(exc: BaseException) -> dict[str, Any]:
    bases = [
        c.__name__
        for c in type(exc).__mro__
        if getattr(builtins, c.__name__, None) is c and issubclass(c, Exception)
    ]
    try:
        message = str(exc)
    except Exception:
        message = f"<{type(exc).__name__}>"
    # The guest rebuilds the exception from its args when they are plain values, so that
    # KeyError('k') stays KeyError('k') rather than KeyError("'k'").
    args = list(exc.args) if all(isinstance(a, str | int | float | bool) for a in exc.args) else []
    return {"type": type(exc).__name__, "bases": bases, "message": message[:8000], "args": args}


@dataclass(slots=True)
class ToolOutcome:
    """What one tool call produced: the reply for the guest and the record for the result."""

    reply: dict[str, Any]
    record: ToolCall
    #: The call was cut off by the execution's deadline (the guest gets a TimeoutError).
    timed_out: bool = False


def _outcome(
    name: str, args: list[Any], kwargs: dict[str, Any], start: float, value: Any, exc: Any
) -> ToolOutcome:
    duration = time.perf_counter() - start
    if exc is None:
        try:
            text = dumps(value)
            reply_value = json.loads(text)  # checked and normalized once, here
        except (TypeError, ValueError) as err:
            exc = TypeError(f"tool {name}() returned a value that is not JSON-serializable: {err}")
        else:
            # The record keeps a bounded representation; the guest gets the whole value.
            big = len(text) > TOOL_RECORD_LIMIT
            kept = clip(text) if big else reply_value
            return ToolOutcome(
                {"ok": True, "value": reply_value},
                ToolCall(name, tuple(args), kwargs, True, kept, None, duration, big),
            )
    payload = _error_payload(exc)
    text = f"{payload['type']}: {payload['message']}"
    return ToolOutcome(
        {"ok": False, "error": payload},
        ToolCall(name, tuple(args), kwargs, False, None, text, duration),
    )


_local = threading.local()
_helper = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dsx-sandbox-tool")


def _run_awaitable(aw: Awaitable[Any]) -> Any:
    """Finish an awaitable from synchronous code (a tool coroutine under ``execute``)."""

    async def wrap() -> Any:
        return await aw

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = getattr(_local, "loop", None)
        if loop is None or loop.is_closed():
            loop = _local.loop = asyncio.new_event_loop()
        return loop.run_until_complete(wrap())
    # A loop already runs in this thread (sync execute called from async code).
    return _helper.submit(asyncio.run, wrap()).result()


def call_tool_sync(tool: Tool, args: list[Any], kwargs: dict[str, Any]) -> ToolOutcome:
    """Run ``tool`` in this thread (awaiting it on a private loop when it is async)."""
    start = time.perf_counter()
    try:
        value = tool.fn(*args, **kwargs)
        if inspect.isawaitable(value):
            value = _run_awaitable(value)
    except Exception as exc:
        return _outcome(tool.name, args, kwargs, start, None, exc)
    return _outcome(tool.name, args, kwargs, start, value, None)


async def call_tool_async(tool: Tool, args: list[Any], kwargs: dict[str, Any]) -> ToolOutcome:
    """Await an async tool; run a sync one in a worker thread so the loop stays free."""
    start = time.perf_counter()
    try:
        if inspect.iscoroutinefunction(tool.fn):
            value = await tool.fn(*args, **kwargs)
        else:
            value = await asyncio.to_thread(tool.fn, *args, **kwargs)
            if inspect.isawaitable(value):
                value = await value
    except Exception as exc:
        return _outcome(tool.name, args, kwargs, start, None, exc)
    return _outcome(tool.name, args, kwargs, start, value, None)
