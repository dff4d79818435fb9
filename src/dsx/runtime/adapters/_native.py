"""Native function calling: a signature's ``list[dsx.Tool]`` input and ``dsx.ToolCalls``
output become the provider's ``tools=[...]`` and ``tool_calls``.

An adapter with ``use_native_function_calling=True`` plans each call: when the signature
has a ``ToolCalls`` output, a tools input, and the LM supports function calling
(:func:`supports_function_calling`), the two fields leave the prompt (a reduced signature,
cached), the tools travel as ``tools=[...]``, and the reply's tool calls fill the output.
Otherwise the LM writes the calls as JSON text in the adapter's own format.
"""

from __future__ import annotations

import json
import sys
import threading
import typing
from collections.abc import Mapping
from typing import Any

from dsx.errors import SignatureError
from dsx.runtime.signature import Signature
from dsx.runtime.tool import Tool
from dsx.runtime.tool_calls import ToolCalls

__all__ = ["NativePlan", "plan_native_call", "supports_function_calling", "tool_fields"]


class NativePlan:
    """How one signature is sent with native function calling."""

    __slots__ = ("calls_field", "signature", "tools_field")

    def __init__(self, signature: type[Signature], tools_field: str, calls_field: str) -> None:
        self.signature = signature  # without the two fields
        self.tools_field = tools_field
        self.calls_field = calls_field


def _is_tool_type(tp: Any) -> bool:
    if tp is Tool:
        return True
    origin = typing.get_origin(tp)
    if origin in (list, tuple) or getattr(origin, "__name__", "") == "Sequence":
        args = typing.get_args(tp)
        return bool(args) and args[0] is Tool
    return False


def tool_fields(signature: type[Signature]) -> tuple[str | None, str | None]:
    """The names of the signature's tools input and ``ToolCalls`` output (``None`` if absent)."""
    cache = signature._adapter_cache
    found = cache.get("_tool_fields")
    if found is None:
        tools = next(
            (n for n, f in signature.input_fields.items() if _is_tool_type(f.annotation)), None
        )
        calls = next(
            (n for n, f in signature.output_fields.items() if f.annotation is ToolCalls), None
        )
        found = cache["_tool_fields"] = (tools, calls)
    return typing.cast("tuple[str | None, str | None]", found)


def plan_native_call(lm: Any, signature: type[Signature]) -> NativePlan | None:
    """The plan for a native call, or ``None`` when this call is sent as text."""
    tools, calls = tool_fields(signature)
    if calls is None:
        return None
    if tools is None:
        raise SignatureError(
            f"{signature.__name__} has the output `{calls}: dsx.ToolCalls` but no tools input "
            "for the LM to choose from: add an input `tools: list[dsx.Tool]`."
        )
    if not supports_function_calling(lm):
        return None
    cache = signature._adapter_cache
    plan = cache.get("_native_plan")
    if plan is None:
        reduced = signature.delete(calls).delete(tools)
        plan = cache["_native_plan"] = NativePlan(reduced, tools, calls)
    return typing.cast(NativePlan, plan)


def request_tools(value: Any) -> list[dict[str, Any]]:
    """The ``tools=[...]`` request parameter for a tools input value."""
    items = value if isinstance(value, list | tuple) else [value]
    out = []
    for item in items:
        if isinstance(item, Mapping) and item.get("type") == "function":
            out.append(dict(item))  # already in the provider's format
            continue
        tool = item if isinstance(item, Tool) else Tool(item)
        out.append(tool.format_as_litellm_function_call())
    return out


def reply_tool_calls(response: Any, index: int) -> tuple[str, list[dict[str, Any]] | None]:
    """Choice ``index``'s text and tool calls (``None`` when it made none).

    The provider's answer object, when the response still has it, is read first; otherwise
    (cached or streamed answers) a reply that is only tool calls arrives as the text
    ``{"tool_calls": [...]}`` that :class:`dsx.LM` writes for it.
    """
    text = response.outputs[index] if index < len(response.outputs) else ""
    raw = response.raw
    if raw is not None:
        choices = _get(raw, "choices") or []
        if index < len(choices):
            message = _get(choices[index], "message")
            calls = _get(message, "tool_calls") if message is not None else None
            if calls:
                content = _get(message, "content")
                own_text = content if isinstance(content, str) else ""
                return own_text, [_provider_call(c) for c in calls]
    stripped = text.strip()
    if stripped.startswith("{") and '"tool_calls"' in stripped:
        try:
            data = json.loads(stripped)
        except ValueError:
            return text, None
        if isinstance(data, dict) and set(data) == {"tool_calls"}:
            calls = data["tool_calls"]
            if isinstance(calls, list) and all(isinstance(c, dict) for c in calls):
                return "", [_provider_call(c) for c in calls]
    return text, None


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _provider_call(call: Any) -> dict[str, Any]:
    function = _get(call, "function")
    if function is not None:
        return {
            "id": _get(call, "id"),
            "name": _get(function, "name"),
            "args": _get(function, "arguments"),
        }
    args = _get(call, "arguments")
    return {
        "id": _get(call, "id") or _get(call, "call_id"),
        "name": _get(call, "name"),
        "args": args if args is not None else _get(call, "args"),
    }


# -- capability lookup -----------------------------------------------------------------------

_known: dict[str, bool] = {}
_lock = threading.Lock()
_catalog: dict[str, Any] | None = None


def supports_function_calling(lm: Any) -> bool:
    """Whether ``lm`` takes ``tools=[...]`` and answers with ``tool_calls``.

    An LM says so itself with a ``supports_function_calling`` attribute or property
    (``lm.supports_function_calling = True`` for a local server that does); otherwise a
    real LM's model is looked up in LiteLLM's model catalog (read from the file LiteLLM
    ships, without importing LiteLLM). Scripted LMs and unknown models: ``False``.
    """
    declared = getattr(lm, "supports_function_calling", None)
    if isinstance(declared, bool):
        return declared
    if not getattr(lm, "is_real", False):
        return False
    model = getattr(lm, "model", None)
    if not isinstance(model, str):
        return False
    known = _known.get(model)
    if known is None:
        known = _known[model] = _catalog_says(model)
    return known


def _catalog_says(model: str) -> bool:
    litellm = sys.modules.get("litellm")
    if litellm is not None:
        try:
            return bool(litellm.supports_function_calling(model=model))
        except Exception:
            return False
    catalog = _load_catalog()
    provider, _, name = model.partition("/")
    keys = [model] if not name else [model, name]
    for key in keys:
        entry = catalog.get(key)
        if not isinstance(entry, dict):
            continue
        owner = str(entry.get("litellm_provider", ""))
        if (
            key == name
            and provider
            and not owner.startswith((provider, f"text-completion-{provider}"))
        ):
            continue
        return entry.get("supports_function_calling") is True
    return False


def _load_catalog() -> dict[str, Any]:
    global _catalog
    with _lock:
        if _catalog is None:
            _catalog = _read_catalog()
        return _catalog


def _read_catalog() -> dict[str, Any]:
    import importlib.util
    from pathlib import Path

    try:  # find_spec locates the package without importing it (seconds)
        spec = importlib.util.find_spec("litellm")
        for location in list(spec.submodule_search_locations or []) if spec else []:
            path = Path(location) / "model_prices_and_context_window_backup.json"
            if path.is_file():
                data = json.loads(path.read_text(encoding="utf-8"))
                return data if isinstance(data, dict) else {}
    except (ImportError, OSError, ValueError):
        pass
    return {}
