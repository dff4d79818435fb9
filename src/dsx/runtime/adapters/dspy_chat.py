"""``DSPyChatAdapter``: DSPy's chat prompt layout (``[[ ## field ## ]]`` markers), for
programs whose instructions and demos were optimized on DSPy's prompts.

The messages match what DSPy 3.x's ``ChatAdapter.format`` writes for the same signature,
demos and inputs — system message, demo turns (incomplete demos first), history turns, the
request with its output reminder — for text, numbers, booleans, ``Literal``/``Enum``, lists,
dicts and pydantic models. Parsing reads the same markers with dsx's tolerant value parsing.
Media inputs and DSPy's custom-type descriptions are not reproduced (see ``docs/migrating.md``).
"""

from __future__ import annotations

import enum
import json
import re
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic

from dsx.errors import AdapterParseError
from dsx.runtime.adapters._values import jsonable, parse_value
from dsx.runtime.adapters.base import Message, Prepared
from dsx.runtime.adapters.chat import ChatAdapter
from dsx.runtime.example import Example
from dsx.runtime.predict import REASONING_DESC
from dsx.runtime.signature import Field, Signature
from dsx.runtime.tool_calls import ToolCalls

__all__ = ["DSPyChatAdapter"]

_HEADER = re.compile(r"\[\[ ## (\w+) ## \]\]")
_INCOMPLETE = "This is an example of the task, though some input or output fields are not supplied."
_NOT_SUPPLIED = "Not supplied for this particular example. "
_DSPY_CONSTRAINTS = {
    "gt": "greater than: ",
    "ge": "greater than or equal to: ",
    "lt": "less than: ",
    "le": "less than or equal to: ",
    "min_length": "minimum length: ",
    "max_length": "maximum length: ",
    "multiple_of": "a multiple of the given number: ",
    "allow_inf_nan": "allow 'inf', '-inf', 'nan' values: ",
}


def _marker(name: str) -> str:
    return f"[[ ## {name} ## ]]"


class DSPyChatAdapter(ChatAdapter):
    """The chat adapter with DSPy's prompt layout, byte for byte.

    Use it to run a program whose instructions and demos were optimized with DSPy, so the
    LM sees the prompts the optimization chose::

        dsx.configure(adapter=dsx.DSPyChatAdapter())

    Takes the :class:`~dsx.ChatAdapter`'s options (the JSON fallback is dsx's JSON adapter).
    """

    name = "DSPyChatAdapter"

    def input_marker(self, field: Field) -> str:
        return _marker(field.name)

    # -- the system message and the reminder, once per signature --------------------------
    def _build(self, prep: Prepared) -> None:
        sig = prep.signature
        inputs = list(sig.input_fields.values())
        outputs = list(sig.output_fields.values())
        structure = [
            "All interactions will be structured in the following way, with the appropriate "
            "values filled in.",
            "\n\n".join(f"{_marker(f.name)}\n{{{f.name}}}" for f in inputs),
            "\n\n".join(f"{_marker(f.name)}\n{_type_note(f)}" for f in outputs),
            "[[ ## completed ## ]]\n",
        ]
        instructions = _dspy_instructions(sig.instructions)
        objective = ("\n" + " " * 8).join(["", *textwrap.dedent(instructions).splitlines()])
        prep.system = (
            f"Your input fields are:\n{_describe(inputs)}\n"
            f"Your output fields are:\n{_describe(outputs)}\n"
            + "\n\n".join(structure).strip()
            + f"\nIn adhering to this structure, your objective is: {objective}"
        )
        reminder = ", then ".join(f"`{_marker(f.name)}`{_reminder_type(f)}" for f in outputs)
        prep.user_suffix = (
            "Respond with the corresponding output fields, starting with the field "
            f"{reminder}, and then ending with the marker for `[[ ## completed ## ]]`."
        )

    # -- messages -----------------------------------------------------------------------
    def format(
        self,
        signature: type[Signature],
        demos: Sequence[Any],
        inputs: Mapping[str, Any],
    ) -> list[Message]:
        prep = self.prepare(signature)
        messages: list[Message] = [{"role": "system", "content": prep.system}]
        complete, incomplete = [], []
        for demo in demos:
            values = demo if isinstance(demo, Mapping | Example) else {}
            if all(values.get(name) is not None for name in signature.fields):
                complete.append(values)
            elif any(n in values for n in signature.input_fields) and any(
                n in values for n in signature.output_fields
            ):
                incomplete.append(values)
        inputs_only = prep.input_fields
        for values in incomplete:
            messages.append(
                {"role": "user", "content": self._user(prep, inputs_only, values, _INCOMPLETE)}
            )
            messages.append(
                {"role": "assistant", "content": self._assistant(prep, values, _NOT_SUPPLIED)}
            )
        for values in complete:
            messages.append({"role": "user", "content": self._user(prep, inputs_only, values)})
            messages.append({"role": "assistant", "content": self._assistant(prep, values, None)})
        for hfield in prep.history_fields:
            history = inputs.get(hfield.name)
            if history is None:
                continue
            for turn in getattr(history, "messages", history):
                asked = any(f.name in turn for f in inputs_only)
                content = self._user(prep, inputs_only, turn, "", main=asked)
                if content:
                    messages.append({"role": "user", "content": content})
                messages.append({"role": "assistant", "content": self._assistant(prep, turn, None)})
        content = self._user(prep, inputs_only, inputs, "", main=True)
        if content:
            messages.append({"role": "user", "content": content})
        return messages

    def _user(
        self,
        prep: Prepared,
        fields: list[Field],
        values: Any,
        prefix: str = "",
        *,
        main: bool = False,
    ) -> str:
        parts = [prefix]
        for f in fields:
            if f.name in values:
                parts.append(f"{_marker(f.name)}\n{_format_value(f, values.get(f.name))}")
        if main:
            parts.append(prep.user_suffix)
        parts.append("")
        return "\n\n".join(parts).strip()

    def _assistant(self, prep: Prepared, values: Any, missing: str | None) -> str:
        parts = [
            f"{_marker(f.name)}\n" + _format_value(f, values.get(f.name, missing))
            for f in prep.output_fields
        ]
        return "\n\n".join(parts).strip() + "\n\n[[ ## completed ## ]]\n"

    def format_outputs(self, prep: Prepared, values: Mapping[str, Any]) -> str:
        return self._assistant(prep, values, None)

    # -- parsing ------------------------------------------------------------------------
    def parse(self, signature: type[Signature], text: str) -> dict[str, Any]:
        sections: dict[str, list[str]] = {}
        current: list[str] | None = None
        for line in text.splitlines():
            match = _HEADER.match(line.strip())
            if match:
                name = match.group(1)
                rest = line.strip()[match.end() :].strip()
                current = [rest] if rest else []
                if name not in sections:
                    sections[name] = current
                else:
                    current = []  # a repeated marker: the first section wins
                continue
            if current is not None:
                current.append(line)
        result: dict[str, Any] = {}
        for name, field in signature.output_fields.items():
            if name not in sections:
                raise AdapterParseError(
                    adapter_name=self.name,
                    signature=signature,
                    lm_response=text,
                    message=f"the marker {_marker(name)} is missing",
                    parsed_result=result,
                    field=name,
                )
            try:
                result[name] = parse_value(field, "\n".join(sections[name]).strip())
            except ValueError as exc:
                raise AdapterParseError(
                    adapter_name=self.name,
                    signature=signature,
                    lm_response=text,
                    message=str(exc),
                    parsed_result=result,
                    field=name,
                ) from None
        return result

    def __repr__(self) -> str:
        return f"DSPyChatAdapter(use_json_adapter_fallback={self.use_json_adapter_fallback})"


# -- DSPy's texts for fields and values -------------------------------------------------------


_DEFAULT = re.compile(r"From ((?:`\w+`(?:, )?)+), produce ((?:`\w+`(?:, )?)+)\.")


def _dspy_instructions(instructions: str) -> str:
    """dsx's default instructions (``From `a`, produce `b`.``) in DSPy's words; a signature
    derived from one (ChainOfThought's) keeps them, so they are recognised by their form."""
    match = _DEFAULT.fullmatch(instructions)
    if match is None:
        return instructions
    return f"Given the fields {match.group(1)}, produce the fields {match.group(2)}."


def annotation_name(tp: Any) -> str:
    """A type as DSPy names it in prompts (``Union[str, NoneType]``, ``Literal['a', 'b']``)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is types.UnionType:
        origin = typing.Union
    if origin is None:
        return str(getattr(tp, "__name__", tp))
    if origin is typing.Literal:
        shown = ", ".join(_quoted(a) if isinstance(a, str) else annotation_name(a) for a in args)
        return f"Literal[{shown}]"
    return f"{annotation_name(origin)}[{', '.join(annotation_name(a) for a in args)}]"


def _quoted(text: str) -> str:
    if "'" in text and '"' not in text:
        return f'"{text}"'
    if '"' in text and "'" not in text:
        return f"'{text}'"
    return repr(text)


def _describe(fields: list[Field]) -> str:
    lines = []
    for index, f in enumerate(fields, 1):
        desc = "" if f.name == "reasoning" and f.desc == REASONING_DESC else f.desc
        line = f"{index}. `{f.name}` ({annotation_name(f.annotation)}): {desc}"
        limits = ", ".join(
            f"{_DSPY_CONSTRAINTS[k]}{v}" for k, v in f.constraints.items() if k in _DSPY_CONSTRAINTS
        )
        if limits:
            line += f"\nConstraints: {limits}"
        lines.append(line)
    return "\n".join(lines).strip()


def _type_note(field: Field) -> str:
    tp = field.annotation
    if tp is str:
        note = ""
    elif tp is bool:
        note = "must be True or False"
    elif tp in (int, float):
        note = f"must be a single {tp.__name__} value"
    elif isinstance(tp, type) and issubclass(tp, enum.Enum):
        note = "must be one of: " + "; ".join(str(m.value) for m in tp)
    elif typing.get_origin(tp) is typing.Literal:
        note = "must exactly match (no extra characters) one of: " + "; ".join(
            str(a) for a in typing.get_args(tp)
        )
    else:
        schema = _type_first(pydantic.TypeAdapter(tp).json_schema())
        note = "must adhere to the JSON schema: " + json.dumps(schema, ensure_ascii=False)
    return f"{{{field.name}}}" + (" " * 8 + f"# note: the value you produce {note}" if note else "")


def _type_first(node: Any) -> Any:
    """Keys sorted with ``type`` first, at every level (DSPy's order in schemas)."""
    if isinstance(node, Mapping):
        return {
            k: _type_first(v)
            for k, v in sorted(node.items(), key=lambda kv: (kv[0] != "type", kv[0]))
        }
    if isinstance(node, list):
        return [_type_first(v) for v in node]
    return node


def _reminder_type(field: Field) -> str:
    if field.annotation is ToolCalls:
        return ' (must be a JSON object like {"tool_calls": [{"name": "...", "args": {...}}]})'
    if field.annotation is str:
        return ""
    return f" (must be formatted as a valid Python {annotation_name(field.annotation)})"


def _format_value(field: Field, value: Any) -> str:
    if isinstance(value, list) and field.annotation is str:
        if not value:
            return "N/A"
        if len(value) == 1:
            return _blob(str(value[0]))
        return "\n".join(f"[{i}] {_blob(str(v))}" for i, v in enumerate(value, 1))
    data = jsonable(value)
    if isinstance(data, dict | list):
        return json.dumps(data, ensure_ascii=False, default=str)
    return str(data)


def _blob(text: str) -> str:
    if "\n" not in text and "«" not in text and "»" not in text:
        return f"«{text}»"
    return "«««\n    " + text.replace("\n", "\n    ") + "\n»»»"
