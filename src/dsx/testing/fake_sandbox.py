"""``FakeSandbox``: a scripted stand-in for a sandbox session in tests.

It never runs the code it is given (LM-written code never runs in the host interpreter,
not even in tests); it returns scripted results and records what it was asked to do::

    sb = FakeSandbox(["42\\n", {"value": 3}, {"final": {"answer": "x"}}])
    sb.execute("print(42)").stdout        # "42\\n"
    sb.executions[0].code                 # "print(42)"

A script entry may be a result, a dict of result fields, a string (stdout), an exception
to raise, or a function ``(code, variables, tools) -> entry`` that can call the tools
(host-side, recorded as tool calls) to simulate code that uses them.
"""

from __future__ import annotations

import inspect
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dsx.sandbox import ExecutionError, ExecutionResult, SandboxClosed, ToolCall
from dsx.sandbox._session import Sandbox, ToolsArg
from dsx.sandbox._tools import Tool, normalize_tools

__all__ = ["FakeExecution", "FakeSandbox", "fake_result"]

Script = ExecutionResult | Mapping[str, Any] | str | BaseException | Callable[..., Any]


@dataclass(frozen=True, slots=True)
class FakeExecution:
    """One ``execute`` call the fake received."""

    code: str
    variables: dict[str, Any]
    tools: tuple[str, ...]
    timeout: float | None


def fake_result(**fields: Any) -> ExecutionResult:
    """An :class:`ExecutionResult` from a few fields, the rest inferred.

    ``value=`` sets ``has_value`` and ``value_repr``; ``final=`` sets ``submitted``;
    ``error=`` may be ``"Type: message"``; ``ok`` defaults to "no error".
    """
    if "value" in fields:
        fields.setdefault("has_value", fields["value"] is not None)
        fields.setdefault("value_repr", repr(fields["value"]))
    if "final" in fields:
        fields.setdefault("submitted", True)
    error = fields.get("error")
    if isinstance(error, str):
        kind, _, message = error.partition(": ")
        fields["error"] = ExecutionError(kind, message)
    elif isinstance(error, BaseException):
        fields["error"] = ExecutionError(type(error).__name__, str(error))
    fields.setdefault("ok", fields.get("error") is None)
    return ExecutionResult(**fields)


class _RecordingTools(dict[str, Callable[..., Any]]):
    """The tools as plain callables for script functions, recording each call."""

    def __init__(self, tools: Mapping[str, Tool]) -> None:
        super().__init__()
        self.calls: list[ToolCall] = []
        for name, tool in tools.items():
            self[name] = self._wrap(tool)

    def _wrap(self, tool: Tool) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                value = tool.fn(*args, **kwargs)
            except Exception as exc:
                self.calls.append(
                    ToolCall(tool.name, args, kwargs, False, None, f"{type(exc).__name__}: {exc}")
                )
                raise
            duration = time.perf_counter() - start
            self.calls.append(ToolCall(tool.name, args, kwargs, True, value, None, duration))
            return value

        call.__name__ = tool.name
        return call


class FakeSandbox(Sandbox):
    """A :class:`~dsx.sandbox.Sandbox` that returns scripted results.

    Args:
        script: entries consumed one per ``execute`` (see the module docs).
        default: what to return once the script is used up (default: raise
            ``AssertionError`` naming the unexpected code).
        tools: session tools, as for a real sandbox.
    """

    backend = "fake"

    def __init__(
        self,
        script: Iterable[Script] = (),
        *,
        default: Script | None = None,
        tools: ToolsArg = None,
        **options: Any,
    ) -> None:
        super().__init__(tools=tools, **options)
        self.script: deque[Script] = deque(script)
        self.default = default
        self.executions: list[FakeExecution] = []
        self.starts = 0
        self.resets = 0

    # The protocol hooks are never used: the public methods are overridden.
    def _boot(self, argv_tail: list[str], deadline: float) -> None:  # pragma: no cover
        raise NotImplementedError

    def _shutdown(self) -> None:
        pass

    def _fds(self) -> list[int]:  # pragma: no cover
        return []

    def _read(self) -> tuple[bytes, bytes, bool]:  # pragma: no cover
        return b"", b"", False

    def _write(self, data: bytes, deadline: float) -> None:  # pragma: no cover
        pass

    def start(self) -> FakeSandbox:
        if self._closed:
            raise SandboxClosed("this fake sandbox session is closed")
        if not self._started:
            self._started = True
            self.starts += 1
        return self

    def reset(self) -> None:
        self.resets += 1
        self.start()

    def close(self) -> None:
        self._closed = True
        self._started = False

    def execute(
        self,
        code: str,
        *,
        variables: Mapping[str, Any] | None = None,
        tools: ToolsArg = None,
        timeout: float | None = None,
    ) -> ExecutionResult:
        self.start()
        toolset = {**self.tools, **normalize_tools(tools)}
        self.executions.append(FakeExecution(code, dict(variables or {}), tuple(toolset), timeout))
        if self.script:
            entry = self.script.popleft()
        elif self.default is not None:
            entry = self.default
        else:
            raise AssertionError(f"FakeSandbox has no scripted result left for code:\n{code}")
        started = time.perf_counter()
        recorder = _RecordingTools(toolset)
        if callable(entry) and not isinstance(entry, BaseException):
            entry = entry(code, dict(variables or {}), recorder)
        result = self._as_result(entry)
        calls = tuple(recorder.calls) or result.tool_calls
        return _with(result, tool_calls=calls, duration=time.perf_counter() - started)

    async def aexecute(
        self,
        code: str,
        *,
        variables: Mapping[str, Any] | None = None,
        tools: ToolsArg = None,
        timeout: float | None = None,
    ) -> ExecutionResult:
        return self.execute(code, variables=variables, tools=tools, timeout=timeout)

    @staticmethod
    def _as_result(entry: Any) -> ExecutionResult:
        if inspect.isawaitable(entry):
            raise TypeError("FakeSandbox script functions must be synchronous")
        if isinstance(entry, BaseException):
            raise entry
        if isinstance(entry, ExecutionResult):
            return entry
        if isinstance(entry, str):
            return fake_result(stdout=entry)
        if isinstance(entry, Mapping):
            return fake_result(**dict(entry))
        raise TypeError(f"cannot make an ExecutionResult from {entry!r}")


def _with(result: ExecutionResult, **changes: Any) -> ExecutionResult:
    import dataclasses

    return dataclasses.replace(result, **changes)
