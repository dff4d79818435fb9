"""``PythonInterpreter``: the DSPy-style face of a sandbox, for code-writing modules.

``interp(code)`` returns what the code produced (a :class:`FinalOutput` when it called
``SUBMIT``) and raises when the code failed, which is what ProgramOfThought- and
CodeAct-style modules want; the full :class:`~dsx.sandbox.ExecutionResult` stays on
``last_result``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from dsx.sandbox._session import Sandbox, ToolsArg
from dsx.sandbox._types import BackendName, ExecutionResult, Mount, SandboxError

__all__ = ["CodeExecutionError", "CodeInterpreterError", "FinalOutput", "PythonInterpreter"]


class CodeInterpreterError(SandboxError):
    """The interpreter failed on the host side (setup, engine, protocol)."""


class CodeExecutionError(CodeInterpreterError):
    """The submitted code raised, timed out or crashed its interpreter.

    Attributes:
        result: the full :class:`~dsx.sandbox.ExecutionResult`.
    """

    def __init__(self, message: str, *, result: ExecutionResult) -> None:
        super().__init__(message)
        self.result = result


class FinalOutput:
    """What the code passed to ``SUBMIT(...)``: the end of a code-writing loop."""

    __slots__ = ("output",)

    def __init__(self, output: Any) -> None:
        self.output = output

    def __repr__(self) -> str:
        return f"FinalOutput({self.output!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FinalOutput) and other.output == self.output

    __hash__ = None  # type: ignore[assignment]


def _same_path_mounts(paths: Iterable[str | os.PathLike[str]], writable: bool) -> list[Mount]:
    mounts = []
    for p in paths:
        host = os.path.abspath(os.fspath(p))
        mounts.append(Mount(host, host, writable))  # seen by the guest at the same path
    return mounts


class PythonInterpreter:
    """A persistent sandboxed Python interpreter with host tools.

    Args:
        backend: ``"wasmtime"`` (default) or ``"docker"``.
        tools: host callables the code may call, by name.
        enable_read_paths: host directories the code may read (at the same paths).
        enable_write_paths: host directories the code may also write.
        enable_env_vars: names of host environment variables to pass on (if set).
        output_fields: names for positional ``SUBMIT`` arguments, so that
            ``SUBMIT(a, b)`` gives ``{"x": a, "y": b}`` for ``output_fields=["x", "y"]``.
        sandbox: an existing session to use instead (its options win).
        **options: other :class:`~dsx.sandbox.Sandbox` options (``timeout``,
            ``memory_limit``, ...).
    """

    def __init__(
        self,
        *,
        backend: BackendName = "wasmtime",
        tools: ToolsArg = None,
        enable_read_paths: Iterable[str | os.PathLike[str]] = (),
        enable_write_paths: Iterable[str | os.PathLike[str]] = (),
        enable_env_vars: Iterable[str] = (),
        output_fields: Sequence[str] | None = None,
        sandbox: Sandbox | None = None,
        **options: Any,
    ) -> None:
        if sandbox is None:
            from dsx.sandbox import create_sandbox

            mounts = [
                *_same_path_mounts(enable_read_paths, False),
                *_same_path_mounts(enable_write_paths, True),
                *options.pop("mounts", ()),
            ]
            env = {k: os.environ[k] for k in enable_env_vars if k in os.environ}
            env.update(options.pop("env", None) or {})
            sandbox = create_sandbox(backend, tools=tools, mounts=mounts, env=env, **options)
        self.sandbox = sandbox
        self.output_fields = list(output_fields) if output_fields else None
        self.last_result: ExecutionResult | None = None

    @property
    def tools(self) -> dict[str, Callable[..., Any]]:
        """The host tools by name."""
        return {name: tool.fn for name, tool in self.sandbox.tools.items()}

    @property
    def execution_instructions(self) -> str:
        """A description of the runtime, for prompts of code-writing modules."""
        where = (
            "CPython 3.12 compiled to WebAssembly (WASI)"
            if self.sandbox.backend == "wasmtime"
            else "CPython in an isolated container"
        )
        tools = ", ".join(f"{n}()" for n in self.sandbox.tools) or "none"
        return (
            f"Code runs in a sandboxed {where}: standard library only, no network, no "
            "subprocesses, no host files except those granted. Variables persist between "
            "steps. A final expression's value is returned; print() output is captured. "
            f"Host tools callable as functions: {tools}. When done, call SUBMIT(...) with "
            "the final answer (keyword arguments for named output fields)."
        )

    def start(self) -> None:
        self.sandbox.start()

    def shutdown(self) -> None:
        self.sandbox.close()

    def __enter__(self) -> PythonInterpreter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def execute(self, code: str, variables: Mapping[str, Any] | None = None) -> Any:
        """Run ``code``; return :class:`FinalOutput`, the final value, stdout, or ``None``.

        Raises:
            SyntaxError: the code does not parse.
            CodeExecutionError: the code raised, timed out or crashed the interpreter.
        """
        return self._outcome(self.sandbox.execute(code, variables=variables))

    __call__ = execute

    async def aexecute(self, code: str, variables: Mapping[str, Any] | None = None) -> Any:
        """:meth:`execute` for async callers."""
        return self._outcome(await self.sandbox.aexecute(code, variables=variables))

    def _outcome(self, result: ExecutionResult) -> Any:
        self.last_result = result
        if result.submitted:
            return FinalOutput(self._fields(result.final))
        error = result.error
        if error is not None:
            if error.type == "SyntaxError":
                raise SyntaxError(f"{error.message} (line {error.line})")
            text = error.format()
            if result.stdout:
                text = f"{text}\n--- stdout ---\n{result.stdout}"
            raise CodeExecutionError(text, result=result)
        if result.has_value:
            return result.value
        return result.stdout or None

    def _fields(self, final: Any) -> Any:
        names = self.output_fields
        if not names or isinstance(final, dict):
            return final
        values = final if isinstance(final, list) and len(names) > 1 else [final]
        if len(values) != len(names):
            return final
        return dict(zip(names, values, strict=True))
