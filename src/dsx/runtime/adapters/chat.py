"""The chat adapter: fields delimited by marker lines such as ``<<< answer >>>``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from dsx.errors import AdapterParseError
from dsx.runtime.adapters._values import format_output_value, parse_value, type_hint
from dsx.runtime.adapters.base import NOT_GIVEN, Adapter, Prepared, describe_fields
from dsx.runtime.lm_base import BaseLM, LMResponse
from dsx.runtime.signature import Field, Signature

__all__ = ["END_MARKER", "ChatAdapter", "marker"]

END_MARKER = "<<< end >>>"
_MARKER_LINE = re.compile(r"^[ \t]*<<<[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*>>>[ \t]*$", re.M)


def marker(name: str) -> str:
    return f"<<< {name} >>>"


class ChatAdapter(Adapter):
    """Renders each field under a ``<<< name >>>`` marker line and parses replies the same way.

    Args:
        use_json_adapter_fallback: when a reply cannot be parsed, ask again through the
            :class:`~dsx.JSONAdapter` (one extra LM call) before giving up.
        use_native_function_calling: send a ``list[dsx.Tool]`` input as the provider's
            ``tools=[...]`` and fill a ``dsx.ToolCalls`` output from its ``tool_calls``,
            when the LM supports function calling (off by default, as in DSPy: the LM
            then writes the calls as JSON under the output's marker).
        parallel_tool_calls: ask the provider for (or against) parallel tool calls in
            native calls; ``None`` leaves its default.
    """

    name = "ChatAdapter"

    def __init__(
        self,
        *,
        use_json_adapter_fallback: bool = True,
        use_native_function_calling: bool = False,
        parallel_tool_calls: bool | None = None,
    ) -> None:
        self.use_json_adapter_fallback = use_json_adapter_fallback
        self.use_native_function_calling = use_native_function_calling
        self.parallel_tool_calls = parallel_tool_calls

    def input_marker(self, field: Field) -> str:
        return marker(field.name)

    def _build(self, prep: Prepared) -> None:
        sig = prep.signature
        template = []
        for f in prep.output_fields:
            hint = type_hint(f)
            template.append(f"{marker(f.name)}\n{{{f.name}{' — ' + hint if hint else ''}}}")
        template.append(END_MARKER)
        sections = []
        if prep.input_fields or prep.history_fields:
            sections.append(
                "Your inputs:\n" + describe_fields(prep.input_fields + prep.history_fields)
            )
        if not prep.output_fields:  # a native tool call: the tools are the whole answer
            if sig.instructions:
                sections.append("Your task:\n" + sig.instructions)
            prep.system = "\n\n".join(sections)
            return
        sections.append("Your outputs:\n" + describe_fields(prep.output_fields))
        sections.append(
            "Write every reply in this layout: each output under its own marker line, "
            "in this order, then the closing marker.\n\n" + "\n\n".join(template)
        )
        if sig.instructions:
            sections.append("Your task:\n" + sig.instructions)
        prep.system = "\n\n".join(sections)
        names = ", ".join(marker(f.name) for f in prep.output_fields)
        prep.user_suffix = f"Reply with {names}, then {END_MARKER}."

    def format_outputs(self, prep: Prepared, values: Mapping[str, Any]) -> str:
        parts = []
        for f in prep.output_fields:
            value = values.get(f.name, NOT_GIVEN) if hasattr(values, "get") else NOT_GIVEN
            parts.append(f"{marker(f.name)}\n{format_output_value(value)}")
        parts.append(END_MARKER)
        return "\n\n".join(parts)

    def parse(self, signature: type[Signature], text: str) -> dict[str, Any]:
        sections: dict[str, str] = {}
        matches = list(_MARKER_LINE.finditer(text))
        for i, m in enumerate(matches):
            name = m.group(1)
            if name == "end":
                break
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            if name not in sections:
                sections[name] = text[m.end() : end].strip()
        result: dict[str, Any] = {}
        for name, field in signature.output_fields.items():
            if name not in sections:
                found = ", ".join(sections) or "none"
                raise AdapterParseError(
                    adapter=self.name,
                    signature=signature,
                    field=name,
                    lm_text=text,
                    reason=f"the marker {marker(name)} is missing (markers found: {found})",
                )
            try:
                result[name] = parse_value(field, sections[name])
            except ValueError as exc:
                raise AdapterParseError(
                    adapter=self.name,
                    signature=signature,
                    field=name,
                    lm_text=text,
                    reason=str(exc),
                ) from None
        return result

    def __call__(
        self,
        lm: BaseLM,
        lm_kwargs: Mapping[str, Any],
        signature: type[Signature],
        demos: Sequence[Any],
        inputs: Mapping[str, Any],
    ) -> tuple[list[dict[str, Any]], LMResponse]:
        try:
            return super().__call__(lm, lm_kwargs, signature, demos, inputs)
        except AdapterParseError as exc:
            if not self.use_json_adapter_fallback:
                raise
            return self._fallback()(lm, lm_kwargs, signature, demos, inputs, first_error=exc)

    async def acall(
        self,
        lm: BaseLM,
        lm_kwargs: Mapping[str, Any],
        signature: type[Signature],
        demos: Sequence[Any],
        inputs: Mapping[str, Any],
    ) -> tuple[list[dict[str, Any]], LMResponse]:
        try:
            return await super().acall(lm, lm_kwargs, signature, demos, inputs)
        except AdapterParseError as exc:
            if not self.use_json_adapter_fallback:
                raise
            return await self._fallback().acall(
                lm, lm_kwargs, signature, demos, inputs, first_error=exc
            )

    def _fallback(self) -> Any:
        from dsx.runtime.adapters.json_adapter import FallbackJSONAdapter

        return FallbackJSONAdapter(
            use_native_function_calling=self.use_native_function_calling,
            parallel_tool_calls=self.parallel_tool_calls,
        )

    def __repr__(self) -> str:
        native = ", use_native_function_calling=True" if self.use_native_function_calling else ""
        return f"ChatAdapter(use_json_adapter_fallback={self.use_json_adapter_fallback}{native})"
