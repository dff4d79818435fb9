"""The adapter interface and the machinery both built-in adapters share.

An adapter turns (signature, demos, inputs) into chat messages and the LM's reply back
into typed output values. Everything that depends only on the signature — the system
message, marker strings, field lists, JSON schemas — is computed once per signature and
adapter and kept in the signature class (``signature._adapter_cache``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from dsx.errors import AdapterParseError, ReplyCutOffError
from dsx.runtime import callbacks as _cb
from dsx.runtime.adapters._values import format_input_value, is_history_field, is_media
from dsx.runtime.example import Example
from dsx.runtime.lm_base import BaseLM, LMResponse
from dsx.runtime.signature import Field, Signature

__all__ = ["Adapter", "Prepared"]

Message = dict[str, Any]
_DEMO_CACHE_SIZE = 512
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
            parts.append(self.input_marker(field) + "\n" + format_input_value(value) + "\n\n")
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
        msgs: list[Message] = []
        for turn in getattr(history, "messages", history):
            if any(f.name in turn for f in prep.input_fields):
                msgs.append({"role": "user", "content": self._user_content(prep, turn, False)})
            if any(f.name in turn for f in prep.output_fields):
                msgs.append({"role": "assistant", "content": self.format_outputs(prep, turn)})
        return msgs

    # -- calling the LM -------------------------------------------------------------------
    def __call__(
        self,
        lm: BaseLM,
        lm_kwargs: Mapping[str, Any],
        signature: type[Signature],
        demos: Sequence[Any],
        inputs: Mapping[str, Any],
    ) -> tuple[list[dict[str, Any]], LMResponse]:
        messages = self.format(signature, demos, inputs)
        prep = self.prepare(signature)
        kwargs = {**lm_kwargs, **prep.request_kwargs} if prep.request_kwargs else lm_kwargs
        response = lm.request(messages, **kwargs)
        return self.parse_all(signature, response), response

    async def acall(
        self,
        lm: BaseLM,
        lm_kwargs: Mapping[str, Any],
        signature: type[Signature],
        demos: Sequence[Any],
        inputs: Mapping[str, Any],
    ) -> tuple[list[dict[str, Any]], LMResponse]:
        messages = self.format(signature, demos, inputs)
        prep = self.prepare(signature)
        kwargs = {**lm_kwargs, **prep.request_kwargs} if prep.request_kwargs else lm_kwargs
        response = await lm.arequest(messages, **kwargs)
        return self.parse_all(signature, response), response

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
            if first_error is not None:
                raise first_error
            raise AdapterParseError(
                adapter=self.name,
                signature=signature,
                lm_text="",
                reason="the LM returned no completions",
            )
        return parsed

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


Adapter.format = _cb.wrap_adapter_method(Adapter.format, "adapter_format")  # type: ignore[method-assign]


_CUT_OFF = {
    "length": "it reached the token limit{limit}; raise max_tokens (dsx.LM(..., max_tokens=N)) "
    "or ask for less",
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
        line = f"- `{f.name}` ({f.type_name})"
        if f.desc:
            line += f": {f.desc}"
        lines.append(line)
    return "\n".join(lines)
