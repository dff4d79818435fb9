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


def _same_path_mounts(
    paths: Iterable[str | os.PathLike[str]], writable: bool, quota: int | None = None
) -> list[Mount]:
    mounts = []
    for p in paths:
        host = os.path.abspath(os.fspath(p))
        mounts.append(Mount(host, host, writable, quota))  # seen at the same path
    return mounts


class PythonInterpreter:
    """A persistent sandboxed Python interpreter with host tools.

    Args:
        backend: ``"wasmtime"`` (default) or ``"docker"``.
        tools: host callables the code may call, by name.
        enable_read_paths: host directories the code may read (at the same paths).
        enable_write_paths: host directories the code may also write.
        write_quota: bytes by which the code may grow each writable directory
            (``None``: no limit; see :class:`~dsx.sandbox.Mount`).
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
        write_quota: int | None = None,
        output_fields: Sequence[str] | None = None,
        sandbox: Sandbox | None = None,
        **options: Any,
    ) -> None:
        if sandbox is None:
            from dsx.sandbox import create_sandbox

            mounts = [
                *_same_path_mounts(enable_read_paths, False),
                *_same_path_mounts(enable_write_paths, True, write_quota),
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
        """A description of the runtime, for prompts of code-writing modules.

        Per backend, because they differ in what the code can do: under Wasmtime there
        are no threads and no processes at all; under Docker processes may start but are
        killed after each step, and ``/tmp`` is writable.
        """
        sb = self.sandbox
        if sb.backend == "wasmtime":
            where = (
                "CPython 3.12 compiled to WebAssembly (WASI): standard library only, no "
                "network or sockets, no threads, no subprocesses"
            )
        else:
            where = (
                "CPython in an isolated Linux container: standard library only, no "
                "network; subprocesses may run but are killed at the end of each step; "
                "/tmp is writable scratch space"
            )
        grants = [
            f"{m.guest_path} ({'writable' if m.writable else 'read-only'}"
            + (f", quota {m.quota} bytes" if m.quota is not None else "")
            + ")"
            for m in sb.mounts
        ]
        files = (
            f"Host directories granted: {', '.join(grants)}; no other host files."
            if grants
            else "No host files are visible."
        )
        tools = ", ".join(f"{n}()" for n in sb.tools) or "none"
        return (
            f"Code runs in a sandboxed {where}. {files} Each step may run "
            f"{sb.limits.timeout:g} s and use {sb.limits.memory // 2**20} MiB. Variables "
            "persist between steps (unless a step times out or crashes the interpreter). "
            "A final expression's value is returned; print() output is captured. Host "
            f"tools callable as functions: {tools}. When done, call SUBMIT(...) with the "
            "final answer (keyword arguments for named output fields)."
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
