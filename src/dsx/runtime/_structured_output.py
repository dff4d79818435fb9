"""Which ``response_format`` an endpoint accepts, found out once per model and endpoint.

Servers that speak the OpenAI API disagree about structured output. OpenAI and vLLM take
``{"type": "json_schema", ...}``; llama-cpp-python's server takes only ``text`` and
``{"type": "json_object", "schema": {...}}`` and answers ``json_schema`` with HTTP 500 and
a pydantic validation message; Ollama's ``/v1`` (older versions) takes ``json_object``
only; many servers ignore the field. :class:`dsx.LM` sends what it is asked for; when the
endpoint rejects the ``response_format``, it retries at once one step down :data:`MODES`
and remembers, per model and endpoint, the mode that worked. The last step, ``"text"``,
sends no ``response_format``: the adapter's prompt asks for the JSON, and the adapter
parses it.

This module holds the pure parts: the ladder, building each step's ``response_format``,
and telling a rejection of the format from other bad requests. It imports nothing heavy.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Literal

from dsx.errors import BadRequestError, ContextWindowExceededError, LMError

__all__ = [
    "MODES",
    "Mode",
    "build",
    "describe",
    "lower",
    "mode_of",
    "next_mode",
    "rejects_format",
    "remember",
]

Mode = Literal["json_schema", "json_object_schema", "json_object", "text"]
#: The ladder, strictest first: a JSON schema, ``json_object`` with the schema (the
#: llama.cpp dialect), plain ``json_object``, no ``response_format`` at all.
MODES: tuple[Mode, ...] = ("json_schema", "json_object_schema", "json_object", "text")
_RANK = {mode: rank for rank, mode in enumerate(MODES)}
_LABELS = {
    "json_schema": "json_schema",
    "json_object_schema": "json_object + schema",
    "json_object": "json_object",
    "text": "none (the prompt asks for JSON)",
}

#: A bad request that names the structured-output machinery: "'response_format' of type
#: 'json_schema' is not supported", pydantic's "Input should be 'text' or 'json_object'",
#: "guided_json", ...
_ABOUT_FORMAT = re.compile(
    r"response_?format|json_?schema|json_?object|structured[ _-]?output|guided_?json"
    r"|Input should be 'text'",
    re.IGNORECASE,
)
_lock = threading.Lock()


def mode_of(response_format: Any) -> Mode | None:
    """The mode of a request's ``response_format`` (``None``: absent, or not a dict form
    dsx can step down from)."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        return "json_schema"
    if kind == "json_object":
        return "json_object_schema" if _schema(response_format) is not None else "json_object"
    if kind == "text":
        return "text"
    return None


def _schema(response_format: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON schema a ``response_format`` carries, in either dialect."""
    inner = response_format.get("json_schema")
    schema = inner.get("schema") if isinstance(inner, dict) else response_format.get("schema")
    return schema if isinstance(schema, dict) else None


def build(asked: dict[str, Any], mode: Mode) -> dict[str, Any] | None:
    """The ``response_format`` to send in ``mode`` for a request that asked for ``asked``
    (``None``: send none)."""
    if mode == mode_of(asked):
        return asked
    if mode == "json_object_schema":
        return {"type": "json_object", "schema": _schema(asked)}
    if mode == "json_object":
        return {"type": "json_object"}
    if mode == "text":
        return None
    raise ValueError(f"cannot turn {asked!r} into a {mode} response_format")


def next_mode(mode: Mode, asked: dict[str, Any]) -> Mode | None:
    """The step below ``mode`` that ``asked`` can be sent as (``None``: none is left)."""
    for lower_mode in MODES[_RANK[mode] + 1 :]:
        if lower_mode != "json_object_schema" or _schema(asked) is not None:
            return lower_mode
    return None


def lower(a: Mode, b: Mode | None) -> Mode:
    """The less demanding of two modes (``b`` may be unknown)."""
    return a if b is None or _RANK[a] >= _RANK[b] else b


def rejects_format(err: LMError) -> bool:
    """Whether the provider refused the request because of its ``response_format``.

    Only bad requests count (a 400 or 422, or a validation 500 mapped to one) whose
    message names the structured-output machinery; a too-long prompt or a bad
    ``temperature`` is not the format's fault, and stepping down would not help.
    """
    return (
        isinstance(err, BadRequestError)
        and not isinstance(err, ContextWindowExceededError)
        and bool(_ABOUT_FORMAT.search(err.provider_message or ""))
    )


def remember(
    store: dict[tuple[str, str | None], Mode], key: tuple[str, str | None], mode: Mode
) -> None:
    """Note that ``mode`` worked for ``key`` (model, endpoint) after a stronger one failed.

    Only ever lowers: two calls that fell back concurrently leave the weaker mode.
    """
    with _lock:
        store[key] = lower(mode, store.get(key))


def describe(mode: str | None) -> str:
    """How ``inspect_history`` names a mode."""
    return _LABELS.get(mode or "", str(mode))
