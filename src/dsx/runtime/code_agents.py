"""``ProgramOfThought`` and ``CodeAct``: the LM writes Python, a sandbox runs it.

LM-written code never runs in this interpreter: it runs in a :mod:`dsx.sandbox` session
(Wasmtime by default). ``ProgramOfThought`` writes a program that computes the answer and
fixes it when it fails; ``CodeAct`` works in steps inside one session (state persists), calling
host tools bridged into the sandbox, until its code calls ``SUBMIT(...)`` with the outputs.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from dsx.runtime import callbacks as _cb
from dsx.runtime._attempt import Call, Core, Do, run_async, run_sync
from dsx.runtime.kinds import LM_CONFIG, KindInfo
from dsx.runtime.module import Module
from dsx.runtime.predict import ChainOfThought
from dsx.runtime.prediction import Prediction
from dsx.runtime.signature import InputField, OutputField, Signature, ensure_signature
from dsx.runtime.tool import Tool

__all__ = ["CodeAct", "ProgramOfThought"]

SandboxFactory = Callable[..., Any]
_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S)


def _code(text: str) -> str:
    m = _FENCE.search(text)
    return (m.group(1) if m else text).strip()


def _make_sandbox(
    sandbox: str | SandboxFactory, tools: dict[str, Callable[..., Any]], timeout: float | None
) -> Any:
    if callable(sandbox):
        return sandbox(tools=tools, timeout=timeout)
    from dsx.sandbox import create_sandbox

    return create_sandbox(sandbox, tools=tools, timeout=timeout)  # type: ignore[arg-type]


class _InterpreterSession:
    """A DSPy-style code interpreter as a sandbox session, for ``ProgramOfThought``.

    The interpreter has ``execute(code) -> value`` (a ``FinalOutput`` when the code called
    ``SUBMIT``) that raises ``CodeExecutionError`` or ``SyntaxError`` when the code fails,
    and optionally ``start()`` / ``shutdown()``: :class:`dsx.sandbox.PythonInterpreter` or
    the user's own class. One made by the factory is shut down after the call; one the
    caller passed is left running (the caller owns it).
    """

    def __init__(self, interpreter: Any, *, owned: bool) -> None:
        if not callable(getattr(interpreter, "execute", None)):
            raise TypeError(
                "a ProgramOfThought interpreter needs an execute(code) method (like "
                f"dsx.sandbox.PythonInterpreter); got {type(interpreter).__name__}"
            )
        self.interpreter = interpreter
        self.owned = owned

    def __enter__(self) -> _InterpreterSession:
        if self.owned and callable(getattr(self.interpreter, "start", None)):
            self.interpreter.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.owned and callable(getattr(self.interpreter, "shutdown", None)):
            self.interpreter.shutdown()

    async def __aenter__(self) -> _InterpreterSession:
        return await asyncio.to_thread(self.__enter__)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.__exit__)

    def execute(self, code: str) -> Any:
        from dsx.sandbox import ExecutionError, ExecutionResult
        from dsx.sandbox.interpreter import CodeExecutionError

        try:
            value = self.interpreter.execute(code)
        except CodeExecutionError as exc:
            result = getattr(exc, "result", None)
            if isinstance(result, ExecutionResult):
                return result
            return ExecutionResult(ok=False, error=ExecutionError(type(exc).__name__, str(exc)))
        except SyntaxError as exc:
            return ExecutionResult(
                ok=False, error=ExecutionError("SyntaxError", exc.msg or str(exc), line=exc.lineno)
            )
        if type(value).__name__ == "FinalOutput" and hasattr(value, "output"):
            return ExecutionResult(ok=True, submitted=True, final=value.output)
        if value is None:
            return ExecutionResult(ok=True)
        return ExecutionResult(ok=True, value=value, value_repr=repr(value), has_value=True)

    async def aexecute(self, code: str) -> Any:
        return await asyncio.to_thread(self.execute, code)

    def reset(self) -> None:
        """Nothing: the attempts of one call share the interpreter, as in DSPy."""

    async def areset(self) -> None:
        """Nothing (see :meth:`reset`)."""


def _observe(result: Any) -> str:
    parts = []
    if result.stdout:
        parts.append(f"stdout:\n{result.stdout.rstrip()}")
    if result.stderr:
        parts.append(f"stderr:\n{result.stderr.rstrip()}")
    if result.has_value:
        parts.append(
            f"value: {result.value_repr if result.value_repr is not None else result.value}"
        )
    if result.timed_out:
        parts.append("error: the code timed out and was stopped")
    elif result.error is not None:
        where = f" (line {result.error.line})" if result.error.line else ""
        parts.append(f"error{where}: {result.error.type}: {result.error.message}")
    if result.session_reset:
        parts.append("note: the interpreter was restarted; earlier variables are gone")
    return "\n".join(parts) or "(no output)"


def _outputs_from(signature: type[Signature], final: Any) -> dict[str, Any] | None:
    """Validated outputs from a ``SUBMIT(...)`` payload, or ``None`` if it does not fit."""
    from dsx.runtime.adapters._values import coerce_value

    outputs = signature.output_fields
    if not isinstance(final, dict):
        if len(outputs) != 1:
            return None
        final = {next(iter(outputs)): final}
    if not all(name in final for name in outputs):
        return None
    try:
        return {name: coerce_value(field, final[name]) for name, field in outputs.items()}
    except ValueError:
        return None


class ProgramOfThought(Module):
    """The LM writes a program that computes the outputs; errors are fed back for a fix.

    Args:
        signature: the task.
        max_iters: attempts at a program that runs.
        sandbox: ``"wasmtime"`` (default), ``"docker"``, or a factory
            ``(tools=..., timeout=...) -> Sandbox``.
        timeout: seconds each run may take.
        interpreter_factory: DSPy's plug-in point instead of ``sandbox``: a zero-argument
            callable that makes an interpreter for each call (``execute(code)``, and
            ``start()`` / ``shutdown()`` when it has them; e.g.
            :class:`dsx.sandbox.PythonInterpreter`, or your own sandbox's class). Each call
            shuts down the interpreter it made. A call may also pass its own interpreter as
            the first positional argument, ``pot(interp, question=...)``, which it leaves
            running.
    """

    dsx_kind: ClassVar[KindInfo] = KindInfo(
        "ProgramOfThought",
        True,
        LM_CONFIG | {"max_iters", "sandbox", "timeout"},
        ("code", "code_output"),
        doc="The LM writes Python, the sandbox runs it, the result answers.",
    )

    def __init__(
        self,
        signature: Any,
        *,
        max_iters: int = 3,
        sandbox: str | SandboxFactory = "wasmtime",
        timeout: float | None = 10.0,
        interpreter_factory: Callable[[], Any] | None = None,
        **config: Any,
    ) -> None:
        if interpreter_factory is not None and (
            not callable(interpreter_factory)
            or (
                not isinstance(interpreter_factory, type)
                and callable(getattr(interpreter_factory, "execute", None))
            )
        ):
            raise TypeError(
                "interpreter_factory takes a zero-argument callable that makes an interpreter "
                f"(a class such as dsx.sandbox.PythonInterpreter), got {interpreter_factory!r}; "
                "to use one interpreter you own, pass it to the call: pot(interp, **inputs)"
            )
        self.interpreter_factory = interpreter_factory
        sig = ensure_signature(signature)
        self.signature = sig
        self.max_iters = max_iters
        self.sandbox = sandbox
        self.timeout = timeout
        outs = ", ".join(f"{n}={n}" for n in sig.output_fields)
        code_doc = (
            f"Python code that computes the answer and ends by calling SUBMIT({outs}). "
            "Standard library only; no network or files."
        )
        base = sig.with_instructions(f"{sig.instructions}\n\nWrite a Python program to solve this.")
        write = base
        for name in list(sig.output_fields):
            write = write.delete(name)
        self.write = ChainOfThought(write.append("code", OutputField(desc=code_doc), str), **config)
        fix = write.append("previous_code", InputField(desc="your program, which failed"), str)
        fix = fix.append("error", InputField(desc="what went wrong when it ran"), str)
        self.fix = ChainOfThought(fix.append("code", OutputField(desc=code_doc), str), **config)
        answer = sig.append("code", InputField(desc="the program that was run"), str)
        answer = answer.append("code_output", InputField(desc="what it printed and returned"), str)
        self.answer = ChainOfThought(answer, **config)

    # Written once, as the generator ``_loop`` that yields each module call and sandbox
    # operation (dsx.runtime._attempt); ``forward`` and ``aforward`` open the session and
    # perform them.
    def forward(self, interpreter: Any = None, /, **inputs: Any) -> Prediction:
        with self._session(interpreter) as session:
            result: Prediction = run_sync(self._loop(inputs, session))
            return result

    async def aforward(self, interpreter: Any = None, /, **inputs: Any) -> Prediction:
        session = self._session(interpreter)
        async with session:
            result: Prediction = await run_async(self._loop(inputs, session))
            return result

    def _session(self, interpreter: Any) -> Any:
        if interpreter is not None:
            return _InterpreterSession(interpreter, owned=False)
        if self.interpreter_factory is not None:
            return _InterpreterSession(self.interpreter_factory(), owned=True)
        return _make_sandbox(self.sandbox, {}, self.timeout)

    def _loop(self, inputs: dict[str, Any], session: Any) -> Core:
        code = _code((yield Call(self.write, (), inputs)).code)
        for attempt in range(self.max_iters):
            result = yield Do(_cb.execute, _cb.aexecute, (session, code))
            if result.ok:
                direct = self._direct(code, result)
                if direct is not None:
                    return direct
                kwargs = {**inputs, "code": code, "code_output": _observe(result)}
                return _annotate((yield Call(self.answer, (), kwargs)), code, result)
            if attempt + 1 < self.max_iters:
                yield Do(session.reset, session.areset)
                kwargs = {**inputs, "previous_code": code, "error": _observe(result)}
                code = _code((yield Call(self.fix, (), kwargs)).code)
        raise _failed(self.max_iters, result)

    def _direct(self, code: str, result: Any) -> Prediction | None:
        if result.submitted:
            values = _outputs_from(self.signature, result.final)
            if values is not None:
                return _annotate(Prediction(values), code, result)
        return None


def _annotate(pred: Prediction, code: str, result: Any) -> Prediction:
    pred["code"] = code
    pred["code_output"] = _observe(result)
    return pred


def _failed(attempts: int, result: Any) -> Exception:
    from dsx.errors import DsxError

    return DsxError(
        f"ProgramOfThought: no program ran successfully in {attempts} attempt(s); the last: {_observe(result)}"
    )


class CodeAct(Module):
    """An agent that acts by writing code: tools are callable inside the sandbox.

    Each step the LM writes code; it runs in one sandbox session for the whole task (so
    variables persist), with ``tools`` bridged to the host. The run ends when the code calls
    ``SUBMIT(output=...)``; after ``max_iters`` steps the outputs are extracted from the
    trajectory. Errors and timeouts are observations the LM can react to.
    """

    dsx_kind: ClassVar[KindInfo] = KindInfo(
        "CodeAct",
        True,
        LM_CONFIG | {"tools", "max_iters", "sandbox", "timeout"},
        ("trajectory",),
        doc="The LM writes code that calls tools inside the sandbox.",
    )

    def __init__(
        self,
        signature: Any,
        tools: Sequence[Callable[..., Any] | Tool] = (),
        *,
        max_iters: int = 5,
        sandbox: str | SandboxFactory = "wasmtime",
        timeout: float | None = 10.0,
        **config: Any,
    ) -> None:
        sig = ensure_signature(signature)
        self.signature = sig
        self.max_iters = max_iters
        self.sandbox = sandbox
        self.timeout = timeout
        self.tools = {t.name: t for t in (x if isinstance(x, Tool) else Tool(x) for x in tools)}
        listing = "\n".join(f"- {t.describe()}" for t in self.tools.values()) or "(none)"
        outs = ", ".join(f"{n}=..." for n in sig.output_fields)
        instructions = (
            f"{sig.instructions}\n\nSolve the task by writing Python code, one step at a time. "
            f"The code runs in a persistent interpreter: variables from earlier steps remain. "
            f"These functions are available:\n{listing}\nWhen you have the answer, call "
            f"SUBMIT({outs})."
        )
        step = sig.with_instructions(instructions).append(
            "trajectory", InputField(desc="earlier steps and what they printed"), str
        )
        for name in list(sig.output_fields):
            step = step.delete(name)
        self.act = ChainOfThought(
            step.append("code", OutputField(desc="the Python code of the next step"), str), **config
        )
        self.extract = ChainOfThought(
            sig.append("trajectory", InputField(desc="what was done"), str), **config
        )

    def _session(self) -> Any:
        bridged = {name: t.func for name, t in self.tools.items()}
        return _make_sandbox(self.sandbox, bridged, self.timeout)

    # Written once, as the generator ``_loop`` (see ProgramOfThought).
    def forward(self, **inputs: Any) -> Prediction:
        with self._session() as session:
            result: Prediction = run_sync(self._loop(inputs, session))
            return result

    async def aforward(self, **inputs: Any) -> Prediction:
        async with self._session() as session:
            result: Prediction = await run_async(self._loop(inputs, session))
            return result

    def _loop(self, inputs: dict[str, Any], session: Any) -> Core:
        trajectory: list[dict[str, Any]] = []
        for _ in range(self.max_iters):
            step = yield Call(self.act, (), {**inputs, "trajectory": _format(trajectory)})
            code = _code(step.code)
            result = yield Do(_cb.execute, _cb.aexecute, (session, code))
            trajectory.append(_step(step, code, result))
            done = self._done(result, trajectory)
            if done is not None:
                return done
        pred = yield Call(self.extract, (), {**inputs, "trajectory": _format(trajectory)})
        return _with(pred, trajectory)

    def _done(self, result: Any, trajectory: list[dict[str, Any]]) -> Prediction | None:
        if not result.submitted:
            return None
        values = _outputs_from(self.signature, result.final)
        if values is None:
            trajectory[-1]["observation"] += (
                f"\nerror: SUBMIT needs {', '.join(self.signature.output_fields)} with the right types; "
                f"got {json.dumps(result.final, default=str)[:200]}"
            )
            return None
        return _with(Prediction(values), trajectory)


def _step(step: Any, code: str, result: Any) -> dict[str, Any]:
    return {
        "reasoning": step.reasoning,
        "code": code,
        "observation": _observe(result),
        "tool_calls": [c.name for c in result.tool_calls],
    }


def _format(trajectory: list[dict[str, Any]]) -> str:
    if not trajectory:
        return "(no steps yet)"
    out = []
    for i, step in enumerate(trajectory, 1):
        out.append(f"Step {i}\ncode:\n{step['code']}\nresult:\n{step['observation']}")
    return "\n\n".join(out)


def _with(pred: Prediction, trajectory: list[dict[str, Any]]) -> Prediction:
    pred["trajectory"] = trajectory
    return pred
