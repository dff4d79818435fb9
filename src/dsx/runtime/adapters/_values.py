"""Turning field values into prompt text, and LM text back into typed values.

Everything derived from a field's type (its description for the prompt, its parser)
is built once and cached on the :class:`~dsx.runtime.signature.Field`.
"""

from __future__ import annotations

import ast
import enum
import json
import re
import typing
from collections.abc import Callable
from typing import Any

import pydantic

from dsx.runtime.signature import Field
from dsx.runtime.tool import Tool
from dsx.runtime.tool_calls import ToolCalls
from dsx.runtime.types import History, Image

__all__ = [
    "format_input_value",
    "format_output_value",
    "jsonable",
    "loads_lenient",
    "parse_value",
    "type_hint",
]

_FENCE = re.compile(r"^```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?```$", re.S)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (pydantic models and enums included)."""
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Tool):
        return value.json_schema()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    return json.dumps(jsonable(value), ensure_ascii=False, default=str)


def format_input_value(value: Any) -> str:
    """Text for an input value: strings as-is, lists of strings numbered, the rest JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "\n".join(f"[{i}] {v}" for i, v in enumerate(value, 1))
    if isinstance(value, Image):
        return str(value)
    return _dumps(value)


def format_output_value(value: Any) -> str:
    """Text for an output value as the LM is asked to write it (strings raw, else JSON)."""
    if isinstance(value, str):
        return value
    return _dumps(value)


def type_hint(field: Field) -> str | None:
    """What the prompt says about an output field's type; ``None`` for plain strings."""
    cache = field._cache
    if "hint" in cache:
        return typing.cast("str | None", cache["hint"])
    tp = field.annotation
    hint: str | None
    if tp is str:
        hint = None
    elif tp is bool:
        hint = "true or false"
    elif tp is int:
        hint = "an integer"
    elif tp is float:
        hint = "a number"
    elif tp is ToolCalls:
        hint = ToolCalls.description()
    elif typing.get_origin(tp) is typing.Literal:
        hint = "exactly one of: " + ", ".join(_literal_text(a) for a in typing.get_args(tp))
    elif isinstance(tp, type) and issubclass(tp, enum.Enum):
        hint = "exactly one of: " + ", ".join(_literal_text(m.value) for m in tp)
    else:
        try:
            schema = pydantic.TypeAdapter(tp).json_schema()
            hint = "JSON matching the schema " + json.dumps(schema, separators=(",", ":"))
        except Exception:
            hint = f"a value of type {field.type_name}"
    cache["hint"] = hint
    return hint


def _literal_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def parse_value(field: Field, text: str) -> Any:
    """Parse the LM's text for ``field`` into its type; raises ``ValueError`` with a reason."""
    parser = field._cache.get("parser")
    if parser is None:
        parser = field._cache["parser"] = _make_parser(field.checked_type)
    return parser(text)


def coerce_value(field: Field, value: Any) -> Any:
    """Validate an already-decoded JSON value for ``field`` (used by the JSON adapter)."""
    if field.annotation is str and not field.constraints:
        if isinstance(value, str):
            return value
        return format_output_value(value)
    if field.annotation is str and not isinstance(value, str):
        value = format_output_value(value)
    adapter = _type_adapter(field)
    try:
        return adapter.validate_python(value)
    except pydantic.ValidationError as exc:
        if isinstance(value, str):
            return parse_value(field, value)
        raise ValueError(_short_error(exc, field.annotation)) from None


def _type_adapter(field: Field) -> pydantic.TypeAdapter[Any]:
    ta = field._cache.get("ta")
    if ta is None:
        ta = field._cache["ta"] = pydantic.TypeAdapter(field.checked_type)
    return typing.cast(pydantic.TypeAdapter[Any], ta)


def _make_parser(tp: Any) -> Callable[[str], Any]:
    if tp is str:
        return str.strip
    adapter = pydantic.TypeAdapter(tp)
    if typing.get_origin(tp) is typing.Annotated and typing.get_args(tp)[0] is str:
        # Text with constraints: the text as it is, checked against them.
        def parse_text(text: str) -> Any:
            try:
                return adapter.validate_python(text.strip())
            except pydantic.ValidationError as exc:
                raise ValueError(_short_error(exc, tp)) from None

        return parse_text
    literal_map = _literal_lookup(
        typing.get_args(tp)[0] if typing.get_origin(tp) is typing.Annotated else tp
    )

    def parse(text: str) -> Any:
        raw = _strip_fences(text.strip())
        if literal_map is not None:
            key = raw.strip().strip("\"'`").strip().lower()
            if key in literal_map:
                return literal_map[key]
        if (
            raw[:1] in '{["'
            or raw[:1].isdigit()
            or raw[:1] == "-"
            or raw in ("true", "false", "null")
        ):
            try:
                return adapter.validate_json(raw)
            except pydantic.ValidationError:
                pass
        first_error: pydantic.ValidationError | None = None
        try:
            return adapter.validate_python(raw)
        except pydantic.ValidationError as exc:
            first_error = exc
        try:
            value = loads_lenient(raw)
        except ValueError:
            value = _NOTHING
        if value is not _NOTHING:
            try:
                return adapter.validate_python(value)
            except pydantic.ValidationError as exc:
                first_error = exc
        if raw.lower() in ("none", "null", "") and type(None) in typing.get_args(tp):
            return None
        raise ValueError(_short_error(first_error, tp))

    return parse


_NOTHING = object()


def _literal_lookup(tp: Any) -> dict[str, Any] | None:
    args: tuple[Any, ...] = ()
    if typing.get_origin(tp) is typing.Literal:
        args = typing.get_args(tp)
    elif isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {str(m.value).lower(): m for m in tp} | {m.name.lower(): m for m in tp}
    if not args:
        return None
    return {str(a).lower(): a for a in args}


def _strip_fences(text: str) -> str:
    if text.startswith("```"):
        match = _FENCE.match(text)
        if match:
            return match.group(1).strip()
    return text


_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def loads_lenient(text: str) -> Any:
    """Decode JSON, tolerating what LMs commonly get wrong.

    Accepts code fences, Python literals (single quotes, True/False/None), trailing
    commas, and prose around a single JSON object or array.
    """
    text = _strip_fences(text.strip())
    try:
        return json.loads(text)
    except ValueError:
        pass
    except RecursionError:
        raise ValueError("the JSON is nested too deeply to decode") from None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    fixed = _TRAILING_COMMA.sub(r"\1", text)
    if fixed != text:
        try:
            return json.loads(fixed)
        except (ValueError, RecursionError):
            pass
    span = _outer_span(text)
    if span and span != text:
        return loads_lenient(span)
    raise ValueError("not valid JSON")


def _outer_span(text: str) -> str | None:
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        return None
    start = min(starts)
    closer = "}" if text[start] == "{" else "]"
    end = text.rfind(closer)
    return text[start : end + 1] if end > start else None


def _short_error(exc: pydantic.ValidationError | None, tp: Any) -> str:
    from dsx.runtime._typeparse import type_name

    if typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    expected = f"expected {type_name(tp)}"
    if exc is None:
        return expected
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "")
    where = f" at {loc}" if loc else ""
    return f"{expected}: {first.get('msg', 'invalid value')}{where}"


def is_media(value: Any) -> bool:
    return isinstance(value, Image) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, Image) for v in value)
    )


def is_history_field(field: Field) -> bool:
    return field.annotation is History
