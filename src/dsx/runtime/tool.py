"""``dsx.Tool``: a Python callable an agent can use, with a JSON schema from its signature.

A tool wraps a function, a bound method or a callable object (sync or async). Its
arguments' JSON schemas come from the type hints (pydantic models included, their
references inlined), its descriptions from the docstring or ``arg_desc=``; arguments the
LM sends are validated and coerced with pydantic before the function runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import json
import re
from collections.abc import Callable
from typing import Any, get_type_hints

import pydantic

from dsx.errors import DsxError
from dsx.runtime import callbacks as _cb
from dsx.runtime.settings import settings

__all__ = [
    "AsyncToolCallError",
    "Tool",
    "ToolArgumentError",
    "convert_input_schema_to_tool_args",
    "resolve_json_schema_reference",
]


class ToolArgumentError(DsxError, ValueError):
    """The arguments given to a tool do not fit its signature."""


class AsyncToolCallError(DsxError, ValueError):
    """An async tool was called synchronously while
    ``dsx.settings.allow_tool_async_sync_conversion`` is off."""


class Tool:
    """Wrap ``func`` (sync or async function, method or callable object) as a tool.

    Args:
        func: the callable; its type hints give the argument schema and its docstring the
            description (Google-style ``Args:`` entries describe arguments).
        name: defaults to the function's (or the callable object's class) name.
        desc: defaults to the docstring's first paragraph.
        args: override the JSON schema of each argument (``{"query": {"type": "string"}}``).
        arg_types: override the Python type of arguments (used to validate them).
        arg_desc: descriptions of arguments (``{"query": "what to look for"}``); they win
            over the docstring's.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        desc: str | None = None,
        args: dict[str, Any] | None = None,
        arg_types: dict[str, Any] | None = None,
        arg_desc: dict[str, str] | None = None,
    ) -> None:
        if isinstance(func, Tool):
            func = func.func
        if not callable(func):
            raise TypeError(f"dsx.Tool needs a callable, got {type(func).__name__}")
        self.func: Callable[..., Any] = func
        target = _annotated_target(func)
        self.name: str = name or str(getattr(func, "__name__", type(func).__name__))
        doc = inspect.getdoc(func) or (inspect.getdoc(target) if target is not func else "") or ""
        self.desc = desc if desc is not None else doc.split("\n\n")[0].strip()
        self.is_async = inspect.iscoroutinefunction(func) or (
            not inspect.isroutine(func) and inspect.iscoroutinefunction(type(func).__call__)
        )
        try:
            sig = inspect.signature(func)
        except (TypeError, ValueError):
            raise TypeError(
                f"dsx.Tool cannot read the signature of {self.name!r}; wrap it in a function "
                "with named, annotated parameters"
            ) from None
        hints = _hints(func, target)
        docs = {**_arg_docs(doc), **(arg_desc or {})}
        unknown = set(arg_desc or {}) - set(sig.parameters)
        if unknown:
            raise ToolArgumentError(
                f"arg_desc names {sorted(unknown)}, which {self.name} does not take; its "
                f"arguments are {list(sig.parameters)}"
            )
        fields: dict[str, Any] = {}
        self.has_kwargs = False
        self.arg_types: dict[str, Any] = {}
        for pname, param in sig.parameters.items():
            if param.kind is param.VAR_KEYWORD:
                self.has_kwargs = True
                continue
            if param.kind is param.VAR_POSITIONAL:
                continue
            annotation = (arg_types or {}).get(pname, hints.get(pname, Any))
            self.arg_types[pname] = annotation
            default = ... if param.default is param.empty else param.default
            fields[pname] = (
                annotation,
                pydantic.Field(default=default, description=docs.get(pname)),
            )
        self._model = pydantic.create_model(f"{_model_name(self.name)}_args", **fields)
        schema = self._model.model_json_schema()
        self._defs = None
        try:
            schema = resolve_json_schema_reference(schema)
        except RecursionError:  # a recursive model: keep its $defs next to the properties
            self._defs = schema.get("$defs")
        properties = {k: _clean_arg_schema(v) for k, v in schema.get("properties", {}).items()}
        self.args: dict[str, Any] = args if args is not None else properties
        self.required: list[str] = [
            k for k in schema.get("required", []) if args is None or k in args
        ]

    # DSPy's name for has_kwargs as dsx had it.
    @property
    def _takes_kwargs(self) -> bool:
        return self.has_kwargs

    def validate(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The arguments checked and coerced to the declared types; raises
        :class:`ToolArgumentError` saying which argument is wrong and why."""
        if not isinstance(kwargs, dict):
            raise ToolArgumentError(
                f"arguments for {self.name} must be a JSON object, got {type(kwargs).__name__}"
            )
        unknown = set(kwargs) - set(self._model.model_fields)
        if unknown and not self.has_kwargs:
            raise ToolArgumentError(
                f"{self.name} has no argument {', '.join(map(repr, sorted(unknown)))}; "
                f"its arguments are {list(self._model.model_fields)}"
            )
        try:
            model = self._model.model_validate(
                {k: v for k, v in kwargs.items() if k in self._model.model_fields}
            )
        except pydantic.ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ToolArgumentError(f"invalid arguments for {self.name}: {problems}") from None
        values = {k: getattr(model, k) for k in self._model.model_fields}
        if self.has_kwargs:
            values.update({k: v for k, v in kwargs.items() if k in unknown})
        return values

    #: Callbacks of this tool only (after ``dsx.settings.callbacks``).
    callbacks = _cb.CallbackList()

    def __call__(self, **kwargs: Any) -> Any:
        if _cb.enabled:
            hooks = _cb.active(self)
            if hooks:
                return _cb.call_sync("tool", self, hooks, {"kwargs": kwargs}, self._call, kwargs)
        return self._call(kwargs)

    async def acall(self, **kwargs: Any) -> Any:
        if _cb.enabled:
            hooks = _cb.active(self)
            if hooks:
                inputs = {"kwargs": kwargs}
                return await _cb.call_async("tool", self, hooks, inputs, self._acall, kwargs)
        return await self._acall(kwargs)

    def _call(self, kwargs: dict[str, Any]) -> Any:
        values = self.validate(kwargs)
        if self.is_async and not settings.get("allow_tool_async_sync_conversion", True):
            raise _refused(self.name)
        result = self.func(**values)
        if inspect.isawaitable(result):
            if not settings.get("allow_tool_async_sync_conversion", True):
                if inspect.iscoroutine(result):
                    result.close()
                raise _refused(self.name)
            return _run_to_completion(result)
        return result

    async def _acall(self, kwargs: dict[str, Any]) -> Any:
        values = self.validate(kwargs)
        if self.is_async:
            return await self.func(**values)
        result = self.func(**values)
        if inspect.isawaitable(result):
            return await result
        return result

    # -- schemas ------------------------------------------------------------------------
    def _parameters(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": self.args,
            "required": self.required,
        }
        if self._defs:
            schema["$defs"] = self._defs
        return schema

    def json_schema(self) -> dict[str, Any]:
        """``{"name", "description", "parameters"}``: the tool as a function declaration."""
        return {"name": self.name, "description": self.desc, "parameters": self._parameters()}

    def format_as_litellm_function_call(self) -> dict[str, Any]:
        """The tool in the OpenAI/LiteLLM ``tools=[...]`` request format."""
        return {"type": "function", "function": self.json_schema()}

    def format(self) -> str:
        """The tool as prompt text (what :meth:`describe` gives)."""
        return self.describe()

    def describe(self) -> str:
        """One line for prompts: ``name(arg: type, ...) — description``."""
        params = ", ".join(f"{n}: {_schema_type(s)}" for n, s in self.args.items())
        return f"{self.name}({params}) — {self.desc}" if self.desc else f"{self.name}({params})"

    def __repr__(self) -> str:
        return f"Tool({self.name})"


def _refused(name: str) -> AsyncToolCallError:
    return AsyncToolCallError(
        f"{name} is an async tool called synchronously, and "
        "allow_tool_async_sync_conversion is off. Use `await tool.acall(...)` (or the "
        "module's acall), or allow it: dsx.configure(allow_tool_async_sync_conversion=True)."
    )


def _run_to_completion(awaitable: Any) -> Any:
    """Finish an awaitable from synchronous code: on a fresh event loop, or — when this
    thread already runs one — on a worker thread (the running loop cannot be re-entered)."""

    async def wait() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    context = contextvars.copy_context()  # settings overrides and callbacks follow
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(context.run, asyncio.run, wait()).result()


def _annotated_target(func: Any) -> Any:
    """What carries the annotations: the function itself, or a callable object's
    ``__call__``."""
    if inspect.isfunction(func) or inspect.ismethod(func) or inspect.isbuiltin(func):
        return func
    if isinstance(func, type):
        return func
    inner = getattr(func, "func", None)  # functools.partial
    if inner is not None and callable(inner) and type(func).__name__ == "partial":
        return _annotated_target(inner)
    return type(func).__call__


def _hints(func: Any, target: Any) -> dict[str, Any]:
    for candidate in (func, target):
        try:
            return get_type_hints(candidate)
        except Exception:
            continue
    return {}


def _model_name(name: str) -> str:
    return re.sub(r"\W", "_", name) or "tool"


def _clean_arg_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """One argument's schema without pydantic's generated ``title`` (noise for the LM)."""
    return {k: v for k, v in schema.items() if k != "title"}


def resolve_json_schema_reference(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every ``$ref`` into its ``$defs`` replaced by the definition, and the
    ``$defs`` removed (providers' function declarations want self-contained schemas).

    Raises :class:`RecursionError` for a recursive model, which cannot be inlined.
    """
    defs = schema.get("$defs") or schema.get("definitions")
    if not defs:
        return schema

    def inline(node: Any, depth: int) -> Any:
        if depth > 64:
            raise RecursionError("the schema refers to itself")
        if isinstance(node, list):
            return [inline(item, depth + 1) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/")):
            target = defs.get(ref.rsplit("/", 1)[-1])
            if target is None:
                raise ValueError(f"the schema refers to {ref}, which it does not define")
            extra = {
                k: inline(v, depth + 1)
                for k, v in node.items()
                if k not in ("$ref", "$defs", "definitions")
            }
            return {**inline(target, depth + 1), **extra}
        return {
            k: inline(v, depth + 1) for k, v in node.items() if k not in ("$defs", "definitions")
        }

    return dict(inline(schema, 0))


_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}


def convert_input_schema_to_tool_args(
    schema: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """``(args, arg_types, arg_desc)`` for :class:`Tool` from a JSON schema of a tool's input
    (as MCP servers and other tool registries publish them).

    References are inlined; a required argument's description ends with ``(Required)``.
    """
    if not isinstance(schema, dict):
        raise TypeError(f"expected a JSON schema (a dict), got {type(schema).__name__}")
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    defs = schema.get("$defs")
    args: dict[str, Any] = {}
    arg_types: dict[str, Any] = {}
    arg_desc: dict[str, str] = {}
    for name, prop in properties.items():
        if defs and isinstance(prop, dict):
            prop = resolve_json_schema_reference({**prop, "$defs": defs})
        args[name] = prop
        kind = prop.get("type") if isinstance(prop, dict) else None
        arg_types[name] = _JSON_TYPES.get(kind, Any) if isinstance(kind, str) else Any
        text = prop.get("description") if isinstance(prop, dict) else None
        arg_desc[name] = (text or "No description provided.") + (
            " (Required)" if name in required else ""
        )
    return args, arg_types, arg_desc


def _schema_type(schema: dict[str, Any]) -> str:
    if "type" in schema:
        t = schema["type"]
        if t == "array" and isinstance(schema.get("items"), dict):
            return f"list[{_schema_type(schema['items'])}]"
        if t == "object" and isinstance(schema.get("properties"), dict):
            inner = ", ".join(f"{k}: {_schema_type(v)}" for k, v in schema["properties"].items())
            return "{" + inner + "}"
        return {
            "string": "str",
            "integer": "int",
            "number": "float",
            "boolean": "bool",
            "object": "dict",
        }.get(t, str(t))
    if "anyOf" in schema:
        return " | ".join(_schema_type(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    return "any"


def _arg_docs(doc: str) -> dict[str, str]:
    out: dict[str, str] = {}
    m = re.search(
        r"^\s*(Args|Arguments|Parameters):\s*$(.*?)(^\s*\w[\w ]*:\s*$|\Z)", doc, re.M | re.S
    )
    if not m:
        return out
    for line in m.group(2).splitlines():
        item = re.match(r"\s*(\w+)(?:\s*\([^)]*\))?:\s*(.+)", line)
        if item:
            out[item.group(1)] = item.group(2).strip()
    return out
