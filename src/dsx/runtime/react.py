"""``ReAct``: an agent that thinks, calls tools and observes until it can answer.

Each step is one LM call producing ``next_thought``, ``next_tool_name`` and
``next_tool_args``; the tool's result (or error) is the observation. The special ``finish``
tool ends the loop. A final extraction call (ChainOfThought over the trajectory) produces the
signature's outputs — unless ``finish`` already carried valid outputs and
``extract_from_finish`` is on, which saves that call.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from dsx.errors import ContextWindowExceededError, DsxError, format_error_for_lm
from dsx.runtime._attempt import Call, Core, run_async, run_sync
from dsx.runtime.kinds import LM_CONFIG, KindInfo
from dsx.runtime.module import Module
from dsx.runtime.predict import ChainOfThought, Predict
from dsx.runtime.prediction import Prediction
from dsx.runtime.signature import InputField, OutputField, ensure_signature
from dsx.runtime.tool import Tool, ToolArgumentError

__all__ = ["ReAct"]


class ReAct(Module):
    """Reason and act with tools.

    Args:
        signature: the task (inputs → outputs).
        tools: callables or :class:`~dsx.Tool` objects.
        max_iters: the most tool steps before the agent must answer.
        extract_from_finish: let ``finish`` carry the outputs and skip the extraction call.
    """

    dsx_kind: ClassVar[KindInfo] = KindInfo(
        "ReAct",
        True,
        LM_CONFIG | {"tools", "max_iters"},
        ("trajectory",),
        doc="An agent that reasons and calls tools until it can answer.",
    )

    def __init__(
        self,
        signature: Any,
        tools: Sequence[Callable[..., Any] | Tool] = (),
        *,
        max_iters: int = 10,
        extract_from_finish: bool = False,
        **config: Any,
    ) -> None:
        sig = ensure_signature(signature)
        self.signature = sig
        self.max_iters = max_iters
        self.extract_from_finish = extract_from_finish
        self.tools: dict[str, Tool] = {}
        for t in tools:
            tool = t if isinstance(t, Tool) else Tool(t)
            if tool.name == "finish":
                raise DsxError("a tool may not be called `finish`: that name ends the agent's run")
            self.tools[tool.name] = tool
        outputs = ", ".join(f"`{n}`" for n in sig.output_fields)
        listing = "\n".join(f"- {tool.describe()}" for tool in self.tools.values())
        finish_args = (
            ", ".join(f"{n}: {f.type_name}" for n, f in sig.output_fields.items())
            if extract_from_finish
            else ""
        )
        instructions = (
            f"{sig.instructions}\n\nYou are an agent. Work step by step: in each step write your "
            f"next thought, then pick a tool and its arguments as a JSON object. The tool's result "
            f"is added to the trajectory. When you have what you need to produce {outputs}, call "
            f"`finish`.\n\nTools:\n{listing}\n- finish({finish_args}) — end the task"
        )
        react_sig = sig.with_instructions(instructions).append(
            "trajectory", InputField(desc="the steps so far"), str
        )
        for name in list(sig.output_fields):
            react_sig = react_sig.delete(name)
        react_sig = (
            react_sig.append("next_thought", OutputField(), str)
            .append("next_tool_name", OutputField(desc="one of the tool names, or finish"), str)
            .append(
                "next_tool_args",
                OutputField(desc="the tool's arguments as a JSON object"),
                dict[str, Any],
            )
        )
        self.react = Predict(react_sig, **config)
        extract_sig = sig.append("trajectory", InputField(desc="what the agent did"), str)
        self.extract = ChainOfThought(extract_sig, **config)

    # -- the loop -------------------------------------------------------------------------
    # Written once, as the generator ``_loop`` that yields each module and tool call
    # (dsx.runtime._attempt); ``forward`` and ``aforward`` only perform them.
    def forward(self, **inputs: Any) -> Prediction:
        result: Prediction = run_sync(self._loop(inputs))
        return result

    async def aforward(self, **inputs: Any) -> Prediction:
        result: Prediction = await run_async(self._loop(inputs))
        return result

    def _loop(self, inputs: dict[str, Any]) -> Core:
        trajectory: list[dict[str, Any]] = []
        finished: dict[str, Any] | None = None
        for _ in range(self.max_iters):
            step = yield from self._step(inputs, trajectory)
            if step is None:
                break
            name, args = step.next_tool_name.strip(), step.next_tool_args
            if name == "finish":
                trajectory.append(_entry(step, "finish", args, "Completed."))
                finished = args
                break
            observation = yield from self._run_tool(name, args)
            trajectory.append(_entry(step, name, args, observation))
        direct = self._from_finish(finished, trajectory)
        if direct is not None:
            return direct
        shown = list(trajectory)  # the prediction keeps the whole trajectory
        while True:
            try:
                pred = yield Call(self.extract, (), {**inputs, "trajectory": _format(shown)})
                return _with_trajectory(pred, trajectory)
            except ContextWindowExceededError:
                if not shown:
                    raise
                shown.pop(0)

    def _step(self, inputs: dict[str, Any], trajectory: list[dict[str, Any]]) -> Core:
        while True:
            try:
                return (yield Call(self.react, (), {**inputs, "trajectory": _format(trajectory)}))
            except ContextWindowExceededError:
                if not trajectory:
                    raise
                trajectory.pop(0)  # trim the oldest step and try again

    def _run_tool(self, name: str, args: Any) -> Core:
        tool = self.tools.get(name)
        if tool is None:
            return _unknown_tool(name, self.tools)
        try:
            return _observation(
                (yield Call(tool, (), args)) if isinstance(args, dict) else tool.validate(args)
            )
        except ToolArgumentError as exc:
            return (
                f"Error: {format_error_for_lm(exc)}. Call {tool.describe()} with valid arguments."
            )
        except Exception as exc:
            return f"Error: {name} raised {type(exc).__name__}: {format_error_for_lm(exc)}"

    def _from_finish(
        self, finished: dict[str, Any] | None, trajectory: list[dict[str, Any]]
    ) -> Prediction | None:
        if not self.extract_from_finish or not isinstance(finished, dict):
            return None
        if not all(n in finished for n in self.signature.output_fields):
            return None
        from dsx.runtime.adapters._values import coerce_value

        try:
            values = {
                n: coerce_value(f, finished[n]) for n, f in self.signature.output_fields.items()
            }
        except ValueError:
            return None
        return _with_trajectory(Prediction(values), trajectory)


def _entry(step: Any, tool: str, args: Any, observation: str) -> dict[str, Any]:
    return {"thought": step.next_thought, "tool": tool, "args": args, "observation": observation}


def _unknown_tool(name: str, tools: dict[str, Tool]) -> str:
    return f"Error: there is no tool {name!r}; use one of {', '.join([*tools, 'finish'])}."


def _observation(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _format(trajectory: list[dict[str, Any]]) -> str:
    if not trajectory:
        return "(no steps yet)"
    lines = []
    for i, step in enumerate(trajectory, 1):
        lines.append(f"Step {i}")
        lines.append(f"thought: {step['thought']}")
        lines.append(
            f"tool: {step['tool']}({json.dumps(step['args'], ensure_ascii=False, default=str)})"
        )
        lines.append(f"observation: {step['observation']}")
    return "\n".join(lines)


def _with_trajectory(pred: Prediction, trajectory: list[dict[str, Any]]) -> Prediction:
    pred["trajectory"] = trajectory
    return pred
