"""``dsx.Tool``: a Python callable an agent can use, with a JSON schema from its signature."""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from typing import Any, get_type_hints

import pydantic

from dsx.errors import DsxError
from dsx.runtime import callbacks as _cb

__all__ = ["Tool", "ToolArgumentError"]


class ToolArgumentError(DsxError, ValueError):
    """The arguments given to a tool do not fit its signature."""


class Tool:
    """Wrap ``func`` (sync or async) as a tool.

    Args:
        func: the callable; its type hints give the argument schema and its docstring the
            description (Google-style ``Args:`` entries describe arguments).
        name: defaults to the function's name.
        desc: defaults to the docstring's first paragraph.
        args: override the JSON schema of each argument (``{"query": {"type": "string"}}``).
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        desc: str | None = None,
        args: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(func, Tool):
            func = func.func
        self.func: Callable[..., Any] = func
        self.name: str = name or str(getattr(func, "__name__", type(func).__name__))
        doc = inspect.getdoc(func) or ""
        self.desc = desc if desc is not None else doc.split("\n\n")[0].strip()
        self.is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(
            type(func).__call__
        )
        sig = inspect.signature(func)
        try:
            hints = get_type_hints(func)
        except Exception:
            hints = {}
        arg_docs = _arg_docs(doc)
        fields: dict[str, Any] = {}
        self._takes_kwargs = False
        for pname, param in sig.parameters.items():
            if param.kind is param.VAR_KEYWORD:
                self._takes_kwargs = True
                continue
            if param.kind is param.VAR_POSITIONAL:
                continue
            annotation = hints.get(pname, Any)
            default = ... if param.default is param.empty else param.default
            fields[pname] = (
                annotation,
                pydantic.Field(default=default, description=arg_docs.get(pname)),
            )
        self._model = pydantic.create_model(f"{self.name}_args", **fields)
        schema = self._model.model_json_schema()
        self.args: dict[str, Any] = args or schema.get("properties", {})
        self.required: list[str] = list(schema.get("required", []))
        self._defs = schema.get("$defs")

    def validate(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(kwargs, dict):
            raise ToolArgumentError(
                f"arguments for {self.name} must be a JSON object, got {type(kwargs).__name__}"
            )
        unknown = set(kwargs) - set(self._model.model_fields)
        if unknown and not self._takes_kwargs:
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
        if self._takes_kwargs:
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
        result = self.func(**values)
        if inspect.isawaitable(result):
            import asyncio

            async def wait() -> Any:
                return await result

            return asyncio.run(wait())
        return result

    async def _acall(self, kwargs: dict[str, Any]) -> Any:
        values = self.validate(kwargs)
        if self.is_async:
            return await self.func(**values)
        result = self.func(**values)
        if inspect.isawaitable(result):
            return await result
        return result

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": self.args,
            "required": self.required,
        }
        if self._defs:
            schema["$defs"] = self._defs
        return {"name": self.name, "description": self.desc, "parameters": schema}

    def describe(self) -> str:
        """One line for prompts: ``name(arg: type, ...) — description``."""
        params = ", ".join(f"{n}: {_schema_type(s)}" for n, s in self.args.items())
        return f"{self.name}({params}) — {self.desc}" if self.desc else f"{self.name}({params})"

    def __repr__(self) -> str:
        return f"Tool({self.name})"


def _schema_type(schema: dict[str, Any]) -> str:
    if "type" in schema:
        t = schema["type"]
        if t == "array" and isinstance(schema.get("items"), dict):
            return f"list[{_schema_type(schema['items'])}]"
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
