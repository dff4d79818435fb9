"""The adapter interface and the machinery both built-in adapters share.

An adapter turns (signature, demos, inputs) into chat messages and the LM's reply back
into typed output values. Everything that depends only on the signature — the system
message, marker strings, field lists, JSON schemas — is computed once per signature and
adapter and kept in the signature class (``signature._adapter_cache``).
"""

from __future__ import annotations

import contextvars
import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from dsx.errors import AdapterParseError, ReplyCutOffError
from dsx.runtime import callbacks as _cb
from dsx.runtime.adapters._native import (
    NativePlan,
    plan_native_call,
    reply_tool_calls,
    request_tools,
    tool_fields,
)
from dsx.runtime.adapters._values import format_input_value, is_history_field, is_media, jsonable
from dsx.runtime.example import Example
from dsx.runtime.lm_base import BaseLM, LMResponse
from dsx.runtime.signature import Field, Signature
from dsx.runtime.tool_calls import ToolCalls

__all__ = ["Adapter", "Prepared"]

Message = dict[str, Any]
_DEMO_CACHE_SIZE = 512
#: The native plan while a native call's messages are formatted: its history turns with
#: tool calls become the provider's tool_calls and tool messages.
_native_history: contextvars.ContextVar[NativePlan | None] = contextvars.ContextVar(
    "dsx_native_history", default=None
)
NOT_GIVEN = "(not given for this example)"


class Prepared:
    """Per-(adapter, signature) data computed once."""

    __slots__ = (
        "demo_cache",
        "extra",
        "history_fields",
        "input_fields",
        "output_fields",
        "request_kwargs",
        "signature",
        "system",
        "user_suffix",
    )

    def __init__(self, signature: type[Signature]) -> None:
        self.signature = signature
        self.input_fields: list[Field] = [
            f for f in signature.input_fields.values() if not is_history_field(f)
        ]
        self.history_fields: list[Field] = [
            f for f in signature.input_fields.values() if is_history_field(f)
        ]
        self.output_fields: list[Field] = list(signature.output_fields.values())
        self.system = ""
        self.user_suffix = ""
        self.request_kwargs: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}
        self.demo_cache: OrderedDict[tuple[int, int], tuple[Any, list[Message]]] = OrderedDict()


class Adapter:
    """Base class of adapters. Subclasses fill in the ``_build_*`` and ``parse`` methods."""

    name = "Adapter"
    #: Callbacks of this adapter only; ``format`` and ``parse`` fire the adapter hooks.
    callbacks = _cb.CallbackList()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "format" in cls.__dict__:
            cls.format = _cb.wrap_adapter_method(cls.__dict__["format"], "adapter_format")  # type: ignore[method-assign]
        if "parse" in cls.__dict__:
            cls.parse = _cb.wrap_adapter_method(cls.__dict__["parse"], "adapter_parse")  # type: ignore[method-assign]

    # -- to implement -------------------------------------------------------------------
    def _build(self, prep: Prepared) -> None:
        """Fill ``prep.system``, ``prep.user_suffix`` and ``prep.request_kwargs``."""
        raise NotImplementedError

    def input_marker(self, field: Field) -> str:
        raise NotImplementedError

    def format_outputs(self, prep: Prepared, values: Mapping[str, Any]) -> str:
        """The assistant turn for a demo or a history message."""
        raise NotImplementedError

    def parse(self, signature: type[Signature], text: str) -> dict[str, Any]:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------
    def prepare(self, signature: type[Signature]) -> Prepared:
        cache = signature._adapter_cache
        key = self._cache_key()
        prep = cache.get(key)
        if prep is None:
            prep = Prepared(signature)
            self._build(prep)
            cache[key] = prep
        return prep

    def _cache_key(self) -> Any:
        return type(self)

    def format(
        self,
        signature: type[Signature],
        demos: Sequence[Any],
        inputs: Mapping[str, Any],
    ) -> list[Message]:
        """The messages that would be sent for ``inputs`` (system, demos, history, request)."""
        prep = self.prepare(signature)
        messages: list[Message] = [{"role": "system", "content": prep.system}]
        for demo in demos:
            messages.extend(self._demo_messages(prep, demo))
        for hfield in prep.history_fields:
            history = inputs.get(hfield.name)
            if history is not None:
                messages.extend(self._history_messages(prep, history))
        messages.append({"role": "user", "content": self._user_content(prep, inputs, True)})
        return messages

    def _user_content(
        self, prep: Prepared, values: Mapping[str, Any], final: bool
    ) -> str | list[dict[str, Any]]:
        parts: list[str] = []
        media: list[tuple[int, Any]] | None = None
        for field in prep.input_fields:
            value = values.get(field.name, NOT_GIVEN) if not final else values.get(field.name)
            if value is None and final:
                value = "None"
            if is_media(value):
                if media is None:
                    media = []
                parts.append(self.input_marker(field) + "\n")
                media.append((len(parts), value))
                parts.append("\n\n")
                continue
            if field.format is not None and value is not None and value != NOT_GIVEN:
                text = field.format(value)
                text = text if isinstance(text, str) else str(text)
            else:
                text = format_input_value(value)
            parts.append(self.input_marker(field) + "\n" + text + "\n\n")
        if final:
            parts.append(prep.user_suffix)
        if media is None:
            return "".join(parts).rstrip()
        content: list[dict[str, Any]] = []
        prev = 0
        for index, value in media:
            text = "".join(parts[prev:index])
            if text:
                content.append({"type": "text", "text": text})
            for image in value if isinstance(value, list) else [value]:
                content.append(image.content_part())
            prev = index
        tail = "".join(parts[prev:]).rstrip()
        if tail:
            content.append({"type": "text", "text": tail})
        return content

    def _demo_messages(self, prep: Prepared, demo: Any) -> list[Message]:
        key = None
        if isinstance(demo, Example):
            key = (id(demo), demo._version)
            hit = prep.demo_cache.get(key)
            if hit is not None and hit[0] is demo:
                return hit[1]
        values: Any = demo if isinstance(demo, Mapping | Example) else {}
        has_input = any(f.name in values for f in prep.input_fields)
        has_output = any(f.name in values for f in prep.output_fields)
        msgs: list[Message] = []
        if has_input and has_output:
            msgs = [
                {"role": "user", "content": self._user_content(prep, values, False)},
                {"role": "assistant", "content": self.format_outputs(prep, values)},
            ]
        if key is not None:
            prep.demo_cache[key] = (demo, msgs)
            if len(prep.demo_cache) > _DEMO_CACHE_SIZE:
                prep.demo_cache.popitem(last=False)
        return msgs

    def _history_messages(self, prep: Prepared, history: Any) -> list[Message]:
        plan = _native_history.get()
        msgs: list[Message] = []
        for turn in getattr(history, "messages", history):
            if plan is not None and turn.get(plan.calls_field) is not None:
                msgs.extend(self._native_turn(prep, turn, plan))
                continue
            if any(f.name in turn for f in prep.input_fields):
                msgs.append({"role": "user", "content": self._user_content(prep, turn, False)})
            if any(f.name in turn for f in prep.output_fields):
                msgs.append({"role": "assistant", "content": self.format_outputs(prep, turn)})
        return msgs

    def _native_turn(self, prep: Prepared, turn: Any, plan: NativePlan) -> list[Message]:
        """A history turn with tool calls, in the provider's own shape: the assistant's
        ``tool_calls`` and one ``tool`` message per result. Calls without results (or whose
        results do not name every call's id) cannot be replayed natively and are left out."""
        msgs: list[Message] = []
        if any(f.name in turn for f in prep.input_fields):
            msgs.append({"role": "user", "content": self._user_content(prep, turn, False)})
        calls = ToolCalls.model_validate(turn[plan.calls_field])
        results = calls.tool_call_results
        ids = [c.id for c in calls.tool_calls]
        if results is not None and (
            not all(ids) or ids != [r.call_id for r in results.tool_call_results]
        ):
            results = None
        has_text = any(turn.get(f.name) is not None for f in prep.output_fields)
        content = self.format_outputs(prep, turn) if has_text else None
        if content is None and results is None:
            return msgs
        assistant: Message = {"role": "assistant", "content": content}
        if results is not None:
            assistant["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {
                        "name": c.name,
                        "arguments": json.dumps(jsonable(c.args), ensure_ascii=False),
                    },
                }
                for c in calls.tool_calls
            ]
        msgs.append(assistant)
        for result in results.tool_call_results if results is not None else []:
            value = result.value
            text = (
                value
                if isinstance(value, str)
                else json.dumps(jsonable(value), ensure_ascii=False, default=str)
            )
            msgs.append(
                {
                    "role": "tool",
                    "tool_call_id": result.call_id,
                    "name": result.name,
                    "content": text,
                }
            )
        return msgs

    # -- calling the LM -------------------------------------------------------------------
    #: Send a ``list[dsx.Tool]`` input as the provider's ``tools=[...]`` and fill a
    #: ``dsx.ToolCalls`` output from its ``tool_calls`` when the LM supports function calling.
    use_native_function_calling: bool = False
    #: ``parallel_tool_calls`` for native calls (``None``: the provider's default).
    parallel_tool_calls: bool | None = None

    def _request(
        self,
        lm: BaseLM,
        lm_kwargs: Mapping[str, Any],
        signature: type[Signature],
        demos: Sequence[Any],
        inputs: Mapping[str, Any],
    ) -> tuple[list[Message], dict[str, Any] | Mapping[str, Any], NativePlan | None]:
        """The messages and request parameters for one call, and the native plan if any."""
        plan = None
        if self.use_native_function_calling and tool_fields(signature)[1] is not None:
            plan = plan_native_call(lm, signature)
        sent = plan.signature if plan is not None else signature
        if plan is not None and self.prepare(sent).history_fields:
            token = _native_history.set(plan)
            try:
                messages = self.format(sent, demos, inputs)
            finally:
                _native_history.reset(token)
        else:
            messages = self.format(sent, demos, inputs)
        prep = self.prepare(sent)
        kwargs = {**lm_kwargs, **prep.request_kwargs} if prep.request_kwargs else lm_kwargs
        if plan is not None:
            kwargs = dict(kwargs)
            if not prep.output_fields:  # only tool calls are wanted: no JSON-only reply mode
                kwargs.pop("response_format", None)
            kwargs["tools"] = request_tools(inputs.get(plan.tools_field) or [])
            if self.parallel_tool_calls is not None:
                kwargs.setdefault("parallel_tool_calls", self.parallel_tool_calls)
                kwargs.setdefault("tool_choice", "auto")
        return messages, kwargs, plan

    def __call__(
        self,
        lm: BaseLM,
        lm_kwargs: Mapping[str, Any],
        signature: type[Signature],
        demos: Sequence[Any],
        inputs: Mapping[str, Any],
    ) -> tuple[list[dict[str, Any]], LMResponse]:
        messages, kwargs, plan = self._request(lm, lm_kwargs, signature, demos, inputs)
        response = send(lm, messages, kwargs)
        if plan is not None:
            return self._parse_native(signature, plan, response), response
        return self.parse_all(signature, response), response

    async def acall(
        self,
        lm: BaseLM,
        lm_kwargs: Mapping[str, Any],
        signature: type[Signature],
        demos: Sequence[Any],
        inputs: Mapping[str, Any],
    ) -> tuple[list[dict[str, Any]], LMResponse]:
        messages, kwargs, plan = self._request(lm, lm_kwargs, signature, demos, inputs)
        response = await asend(lm, messages, kwargs)
        if plan is not None:
            return self._parse_native(signature, plan, response), response
        return self.parse_all(signature, response), response

    def _parse_native(
        self, signature: type[Signature], plan: NativePlan, response: LMResponse
    ) -> list[dict[str, Any]]:
        """Each completion's outputs: its tool calls fill the ``ToolCalls`` field (``None``
        when it made none), its text the other outputs."""
        parsed: list[dict[str, Any]] = []
        first_error: Exception | None = None
        reduced = plan.signature
        for index in range(len(response.outputs)):
            try:
                _check_finished(response, index)
                text, calls = reply_tool_calls(response, index)
                if calls:
                    try:
                        value = self.parse(reduced, text) if text.strip() else {}
                    except AdapterParseError:
                        value = {}  # the calls are the answer; the text was commentary
                elif text.strip() or not reduced.output_fields:
                    value = self.parse(reduced, text) if reduced.output_fields else {}
                else:
                    raise AdapterParseError(
                        adapter=self.name,
                        signature=signature,
                        lm_text=text,
                        reason="the LM answered with neither text nor tool calls",
                    )
                value = dict(value)
                for name in signature.output_fields:
                    value.setdefault(name, None)
                value[plan.calls_field] = ToolCalls.from_dict_list(calls) if calls else None
                parsed.append(value)
            except (AdapterParseError, ReplyCutOffError) as exc:
                if len(response.outputs) == 1:
                    raise
                first_error = first_error or exc
        if not parsed:
            raise self._nothing_parsed(signature, first_error)
        return parsed

    def parse_all(self, signature: type[Signature], response: LMResponse) -> list[dict[str, Any]]:
        """Parse every completion; failed ones are dropped unless all fail.

        A completion the model did not finish (token limit, content filter) is never parsed
        into a silently truncated value: it raises :class:`~dsx.errors.ReplyCutOffError`.
        """
        outputs = response.outputs
        if len(outputs) == 1:
            _check_finished(response, 0)
            return [self.parse(signature, outputs[0])]
        parsed, first_error = [], None
        for index, text in enumerate(outputs):
            try:
                _check_finished(response, index)
                parsed.append(self.parse(signature, text))
            except (AdapterParseError, ReplyCutOffError) as exc:
                first_error = first_error or exc
        if not parsed:
            raise self._nothing_parsed(signature, first_error)
        return parsed

    def _nothing_parsed(
        self, signature: type[Signature], first_error: Exception | None
    ) -> Exception:
        """What to raise when no completion parsed: the first failure, else "no completions"."""
        if first_error is not None:
            return first_error
        return AdapterParseError(
            adapter=self.name,
            signature=signature,
            lm_text="",
            reason="the LM returned no completions",
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


Adapter.format = _cb.wrap_adapter_method(Adapter.format, "adapter_format")  # type: ignore[method-assign]


# -- sending: through an LM subclass's own __call__/acall when it has one -------------------


def send(lm: BaseLM, messages: list[Message], kwargs: Mapping[str, Any]) -> LMResponse:
    """Send one request. An LM class that overrides ``__call__`` (DSPy's way to customise an
    LM) is called through it; otherwise through :meth:`BaseLM.request`."""
    if type(lm).__call__ is BaseLM.__call__:
        return lm.request(messages, **kwargs)
    return _as_response(lm, lm(messages=messages, **kwargs))


async def asend(lm: BaseLM, messages: list[Message], kwargs: Mapping[str, Any]) -> LMResponse:
    """The async :func:`send`: an overridden ``acall`` first, then an overridden
    ``__call__`` (in a worker thread), else :meth:`BaseLM.arequest`."""
    kind = type(lm)
    if kind.acall is not BaseLM.acall:
        return _as_response(lm, await lm.acall(messages=messages, **kwargs))
    if kind.__call__ is not BaseLM.__call__:
        import asyncio

        outputs = await asyncio.to_thread(lambda: lm(messages=messages, **kwargs))
        return _as_response(lm, outputs)
    return await lm.arequest(messages, **kwargs)


def _as_response(lm: BaseLM, outputs: Any) -> LMResponse:
    """What an LM's ``__call__`` returned — a list of texts, or of DSPy's output dicts
    (``text``, ``tool_calls``) — as an :class:`LMResponse`."""
    if isinstance(outputs, LMResponse):
        return outputs
    if isinstance(outputs, str | Mapping) or not isinstance(outputs, Sequence):
        outputs = [outputs]
    texts: list[str] = []
    choices: list[dict[str, Any]] = []
    for item in outputs:
        if isinstance(item, Mapping):
            text = item.get("text")
            text = text if isinstance(text, str) else ""
            message: dict[str, Any] = {"content": text}
            if item.get("tool_calls"):
                message["tool_calls"] = list(item["tool_calls"])
            choices.append({"message": message})
            texts.append(text)
        else:
            texts.append("" if item is None else str(item))
            choices.append({"message": {"content": texts[-1]}})
    if not texts:
        raise AdapterParseError(
            adapter="the adapter",
            lm_text="",
            reason=f"{type(lm).__name__}.__call__ returned no outputs",
        )
    return LMResponse(outputs=texts, model=getattr(lm, "model", ""), raw={"choices": choices})


_CUT_OFF = {
    "length": "it reached the token limit{limit}; raise max_tokens (dsx.LM(..., max_tokens=N); "
    "on the dsx command line, --lm-option max_tokens=N) or ask for less",
    "content_filter": "the provider's content filter stopped it",
}


def _check_finished(response: LMResponse, index: int) -> None:
    reasons = response.finish_reasons
    reason = reasons[index] if index < len(reasons) else None
    if reason not in _CUT_OFF:
        return
    text = response.outputs[index] if index < len(response.outputs) else ""
    tokens = response.usage.get("completion_tokens")
    limit = f" after {tokens} tokens" if tokens else ""
    why = _CUT_OFF[reason].format(limit=limit)
    raise ReplyCutOffError(
        f"{response.model or 'the LM'}: the reply was cut off before it was complete "
        f"(finish_reason={reason!r}): {why}. The partial reply: {text[:300]!r}",
        finish_reason=reason,
        lm_text=text,
        model=response.model or None,
    )


def describe_fields(fields: Sequence[Field], hint_of: Any = None) -> str:
    lines = []
    for f in fields:
        limits = f"; {f.constraints_text}" if f.constraints else ""
        line = f"- `{f.name}` ({f.type_name}{limits})"
        if f.desc:
            line += f": {f.desc}"
        lines.append(line)
    return "\n".join(lines)
