"""Tool calls as data: :class:`ToolCalls` (an output field the LM fills) and
:class:`ToolCallResults` (what running them gave, an input field or history entry).

A signature with a ``list[dsx.Tool]`` input and a ``dsx.ToolCalls`` output lets the program
decide when and how to run the tools the LM picks::

    class Plan(dsx.Signature):
        question: str = dsx.InputField()
        tools: list[dsx.Tool] = dsx.InputField()
        calls: dsx.ToolCalls = dsx.OutputField()

    pred = dsx.Predict(Plan)(question="...", tools=[dsx.Tool(search)])
    results = [call.execute(functions=[search]) for call in pred.calls.tool_calls]

With an adapter that uses native function calling and an LM that supports it, the tools go
to the provider as ``tools=[...]`` and its ``tool_calls`` fill the field; otherwise the LM
writes the calls as JSON in its reply (see ``docs/dspy.md``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pydantic

from dsx.errors import DsxError

__all__ = ["ToolCallResults", "ToolCalls", "ToolExecutionError", "ToolNotFoundError"]


class ToolNotFoundError(DsxError, ValueError):
    """A tool call names a tool that is not among the functions given to run it."""


class ToolExecutionError(DsxError, RuntimeError):
    """A tool raised while running a call; the tool's exception is the cause."""


def _arguments(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        from dsx.runtime.adapters._values import loads_lenient

        try:
            value = loads_lenient(value) if value.strip() else {}
        except ValueError:
            raise ValueError(
                f"the tool call's arguments are not a JSON object: {value[:200]!r}"
            ) from None
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"the tool call's arguments must be an object, got {value!r}")
    return dict(value)


def _normalize_call(data: Any) -> Any:
    """One call in dsx's shape (``id``, ``name``, ``args``) from DSPy's or a provider's."""
    if not isinstance(data, Mapping):
        return data
    if isinstance(data.get("function"), Mapping):  # OpenAI's {"id", "type", "function"}
        function = data["function"]
        return {
            "id": data.get("id") or data.get("call_id"),
            "name": function.get("name") or data.get("name"),
            "args": _arguments(function.get("arguments")),
        }
    args = data.get("args", data.get("arguments"))
    return {"id": data.get("id") or data.get("call_id"), "name": data.get("name"), "args": args}


def _is_call(data: Any) -> bool:
    return isinstance(data, Mapping) and (
        ("name" in data and ("args" in data or "arguments" in data)) or "function" in data
    )


class ToolCall(pydantic.BaseModel):
    """One call the LM asked for: a tool ``name`` and its ``args``."""

    id: str | None = None
    name: str
    args: dict[str, Any] = pydantic.Field(default_factory=dict)

    @pydantic.field_validator("args", mode="before")
    @classmethod
    def _decode_args(cls, value: Any) -> Any:
        return _arguments(value)

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        # The LM writes a name and args; ids come from providers, never from the LM.
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        target.pop("description", None)
        target.get("properties", {}).pop("id", None)
        if isinstance(target.get("required"), list):
            target["required"] = [r for r in target["required"] if r != "id"]
        return dict(schema)

    def format(self) -> dict[str, Any]:
        """``{"name", "args"}``, as the LM writes a call."""
        return {"name": self.name, "args": self.args}

    def _find(self, functions: Any, caller: Any) -> Callable[..., Any]:
        func: Any = None
        if functions is None:
            if caller is not None:
                func = caller.f_locals.get(self.name) or caller.f_globals.get(self.name)
        elif isinstance(functions, Mapping):
            func = functions.get(self.name)
        else:
            for candidate in functions:
                name = getattr(candidate, "name", None) or getattr(candidate, "__name__", None)
                if name == self.name:
                    func = candidate
                    break
        if func is None or not callable(func):
            raise ToolNotFoundError(
                f"no tool named {self.name!r} to run this call; pass the tools: "
                f"call.execute(functions=[...]) or functions={{{self.name!r}: fn}}"
            )
        return func

    def execute(self, functions: Mapping[str, Any] | Sequence[Any] | None = None) -> Any:
        """Run the call and return the tool's result.

        Args:
            functions: the tools: a ``{name: callable}`` mapping, a list of
                :class:`dsx.Tool` objects or functions, or ``None`` to look the name up
                among the caller's local and global names.

        Raises:
            ToolNotFoundError: no tool has this call's name.
            ToolExecutionError: the tool raised (its exception is the cause).
        """
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None and functions is None else None
        try:
            func = self._find(functions, caller)
        finally:
            del frame, caller
        try:
            return func(**self.args)
        except DsxError as exc:
            if type(exc).__name__ == "AsyncToolCallError":
                raise
            raise ToolExecutionError(f"tool {self.name!r} failed: {exc}") from exc
        except Exception as exc:
            raise ToolExecutionError(f"tool {self.name!r} failed: {exc}") from exc

    async def aexecute(self, functions: Mapping[str, Any] | Sequence[Any] | None = None) -> Any:
        """Like :meth:`execute`, awaiting async tools (``Tool.acall`` for dsx tools)."""
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None and functions is None else None
        try:
            func = self._find(functions, caller)
        finally:
            del frame, caller
        try:
            acall = getattr(func, "acall", None)
            result = acall(**self.args) if acall is not None else func(**self.args)
            if inspect.isawaitable(result):
                result = await result
            return result
        except Exception as exc:
            raise ToolExecutionError(f"tool {self.name!r} failed: {exc}") from exc


class ToolCallResult(pydantic.BaseModel):
    """What one call gave: the call's id and tool name, the value, and whether it failed."""

    call_id: str | None = None
    name: str
    value: Any = None
    is_error: bool = False


class ToolCallResults(pydantic.BaseModel):
    """The results of running tool calls, in the calls' order (an input type)."""

    tool_call_results: list[ToolCallResult]

    @pydantic.model_validator(mode="before")
    @classmethod
    def _accept_shapes(cls, data: Any) -> Any:
        if isinstance(data, list):
            return {"tool_call_results": data}
        if (
            isinstance(data, Mapping)
            and "tool_call_results" not in data
            and {"name", "value"} <= set(data)
        ):
            return {"tool_call_results": [data]}
        return data

    @classmethod
    def from_tool_calls_and_values(
        cls,
        tool_calls: ToolCalls | Sequence[ToolCall],
        values: Sequence[Any],
        is_errors: Sequence[bool] | None = None,
    ) -> ToolCallResults:
        """Pair each call with its value (and whether it was an error), in order."""
        calls = tool_calls.tool_calls if isinstance(tool_calls, ToolCalls) else list(tool_calls)
        if len(calls) != len(values):
            raise ValueError(
                f"{len(calls)} tool calls but {len(values)} values: give one value per call"
            )
        errors = list(is_errors) if is_errors is not None else [False] * len(calls)
        if len(errors) != len(calls):
            raise ValueError(f"{len(calls)} tool calls but {len(errors)} is_errors flags")
        return cls(
            tool_call_results=[
                ToolCallResult(call_id=c.id, name=c.name, value=v, is_error=e)
                for c, v, e in zip(calls, values, errors, strict=True)
            ]
        )


class ToolCalls(pydantic.BaseModel):
    """The tool calls an LM asked for (an output type). ``ToolCalls.ToolCall`` is one call.

    Accepts DSPy's shapes and the providers': a list of ``{"name", "args"}`` dicts, a
    ``{"tool_calls": [...]}`` object, one call dict, or OpenAI's
    ``{"id", "type": "function", "function": {"name", "arguments"}}`` with its arguments as
    a JSON string.
    """

    tool_calls: list[ToolCall]
    #: The results, when the calls were run (kept with them in a conversation history).
    tool_call_results: ToolCallResults | None = None

    @pydantic.model_validator(mode="before")
    @classmethod
    def _accept_shapes(cls, data: Any) -> Any:
        if isinstance(data, str):
            from dsx.runtime.adapters._values import loads_lenient

            data = loads_lenient(data)
        if isinstance(data, list):
            return {"tool_calls": [_normalize_call(item) for item in data]}
        if isinstance(data, Mapping):
            if isinstance(data.get("tool_calls"), list):
                return {**data, "tool_calls": [_normalize_call(c) for c in data["tool_calls"]]}
            if _is_call(data):
                return {"tool_calls": [_normalize_call(data)]}
        return data

    @classmethod
    def from_dict_list(cls, tool_calls_dicts: Sequence[Mapping[str, Any]]) -> ToolCalls:
        """Build from ``[{"name": ..., "args": {...}}, ...]`` (provider shapes accepted)."""
        return cls.model_validate(list(tool_calls_dicts))

    @classmethod
    def description(cls) -> str:
        return (
            'a JSON object like {"tool_calls": [{"name": "...", "args": {...}}]}: each call '
            "names a tool and gives its arguments"
        )

    def format(self) -> dict[str, Any]:
        """``{"tool_calls": [{"name", "args"}, ...]}``, as the LM writes calls."""
        return {"tool_calls": [call.format() for call in self.tool_calls]}

    @pydantic.model_serializer(mode="wrap")
    def _serialize(self, handler: Any) -> Any:
        data = self.format()
        if self.tool_call_results is not None:
            data["tool_call_results"] = handler(self)["tool_call_results"]
        return data

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        # What the LM is asked to write: calls with a name and args, no ids, no results.
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        target.pop("description", None)
        target.get("properties", {}).pop("tool_call_results", None)
        return dict(schema)


# DSPy's spelling of the nested types: ToolCalls.ToolCall, ToolCallResults.ToolCallResult.
ToolCalls.ToolCall = ToolCall  # type: ignore[attr-defined]
ToolCallResults.ToolCallResult = ToolCallResult  # type: ignore[attr-defined]
