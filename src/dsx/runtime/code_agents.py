"""``ProgramOfThought`` and ``CodeAct``: the LM writes Python, a sandbox runs it.

LM-written code never runs in this interpreter: it runs in a :mod:`dsx.sandbox` session
(Wasmtime by default). ``ProgramOfThought`` writes a program that computes the answer and
fixes it when it fails; ``CodeAct`` works in steps inside one session (state persists), calling
host tools bridged into the sandbox, until its code calls ``SUBMIT(...)`` with the outputs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from dsx.runtime import callbacks as _cb
from dsx.runtime._attempt import Call, Core, Do, run_async, run_sync
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
    """

    def __init__(
        self,
        signature: Any,
        *,
        max_iters: int = 3,
        sandbox: str | SandboxFactory = "wasmtime",
        timeout: float | None = 10.0,
        **config: Any,
    ) -> None:
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
    def forward(self, **inputs: Any) -> Prediction:
        with _make_sandbox(self.sandbox, {}, self.timeout) as session:
            result: Prediction = run_sync(self._loop(inputs, session))
            return result

    async def aforward(self, **inputs: Any) -> Prediction:
        session = _make_sandbox(self.sandbox, {}, self.timeout)
        async with session:
            result: Prediction = await run_async(self._loop(inputs, session))
            return result

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
