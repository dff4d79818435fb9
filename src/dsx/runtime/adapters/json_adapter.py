"""The JSON adapter: outputs as one JSON object, using the provider's JSON-schema mode."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic

from dsx.errors import AdapterParseError
from dsx.runtime.adapters._values import coerce_value, jsonable, loads_lenient
from dsx.runtime.adapters.base import NOT_GIVEN, Adapter, Prepared, describe_fields
from dsx.runtime.adapters.chat import marker
from dsx.runtime.lm_base import BaseLM, LMResponse
from dsx.runtime.signature import Field, Signature

__all__ = ["JSONAdapter"]


class JSONAdapter(Adapter):
    """Asks for the outputs as a single JSON object.

    The request carries ``response_format`` with the outputs' JSON schema, so providers
    with structured-output support enforce it; the prompt states the schema too. Where an
    endpoint refuses ``json_schema`` (llama.cpp's server, older Ollama), :class:`dsx.LM`
    steps down to ``json_object`` with the schema, then plain ``json_object``, then the
    prompt alone, and remembers what worked (see ``docs/lm.md``).

    Args:
        use_native_function_calling: send a ``list[dsx.Tool]`` input as the provider's
            ``tools=[...]`` and fill a ``dsx.ToolCalls`` output from its ``tool_calls``,
            when the LM supports function calling (on by default, as in DSPy).
        parallel_tool_calls: ask the provider for (or against) parallel tool calls in
            native calls; ``None`` leaves its default.
    """

    name = "JSONAdapter"

    def __init__(
        self, *, use_native_function_calling: bool = True, parallel_tool_calls: bool | None = None
    ) -> None:
        self.use_native_function_calling = use_native_function_calling
        self.parallel_tool_calls = parallel_tool_calls

    def input_marker(self, field: Field) -> str:
        return marker(field.name)

    def _build(self, prep: Prepared) -> None:
        sig = prep.signature
        schema = _outputs_schema(sig, prep.output_fields)
        keys = ", ".join(f'"{f.name}"' for f in prep.output_fields)
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
            f"Reply with one JSON object with exactly the keys {keys}, and nothing outside it. "
            "It must match this JSON schema:\n" + json.dumps(schema, ensure_ascii=False)
        )
        if sig.instructions:
            sections.append("Your task:\n" + sig.instructions)
        prep.system = "\n\n".join(sections)
        prep.user_suffix = f"Reply with a JSON object with the keys {keys}."
        prep.request_kwargs = {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": _schema_name(sig), "schema": schema, "strict": False},
            }
        }

    def format_outputs(self, prep: Prepared, values: Mapping[str, Any]) -> str:
        data = {}
        for f in prep.output_fields:
            value = values.get(f.name, NOT_GIVEN) if hasattr(values, "get") else NOT_GIVEN
            data[f.name] = jsonable(value)
        return json.dumps(data, ensure_ascii=False, default=str)

    def parse(self, signature: type[Signature], text: str) -> dict[str, Any]:
        try:
            data = loads_lenient(text)
        except ValueError:
            raise AdapterParseError(
                adapter=self.name,
                signature=signature,
                lm_text=text,
                reason="the reply is not a JSON object",
            ) from None
        if not isinstance(data, dict):
            raise AdapterParseError(
                adapter=self.name,
                signature=signature,
                lm_text=text,
                reason=f"expected a JSON object, got {type(data).__name__}",
            )
        result: dict[str, Any] = {}
        for name, field in signature.output_fields.items():
            if name not in data:
                raise AdapterParseError(
                    adapter=self.name,
                    signature=signature,
                    field=name,
                    lm_text=text,
                    reason=f"the key {name!r} is missing",
                )
            try:
                result[name] = coerce_value(field, data[name])
            except ValueError as exc:
                raise AdapterParseError(
                    adapter=self.name,
                    signature=signature,
                    field=name,
                    lm_text=text,
                    reason=str(exc),
                ) from None
        return result


class FallbackJSONAdapter(JSONAdapter):
    """The JSON adapter as the chat adapter's fallback: reports both failures."""

    def _cache_key(self) -> Any:
        return JSONAdapter

    def __call__(  # type: ignore[override]
        self,
        lm: BaseLM,
        lm_kwargs: Mapping[str, Any],
        signature: type[Signature],
        demos: Sequence[Any],
        inputs: Mapping[str, Any],
        *,
        first_error: AdapterParseError,
    ) -> tuple[list[dict[str, Any]], LMResponse]:
        try:
            return super().__call__(lm, lm_kwargs, signature, demos, inputs)
        except AdapterParseError as exc:
            raise _both(first_error, exc) from exc

    async def acall(  # type: ignore[override]
        self,
        lm: BaseLM,
        lm_kwargs: Mapping[str, Any],
        signature: type[Signature],
        demos: Sequence[Any],
        inputs: Mapping[str, Any],
        *,
        first_error: AdapterParseError,
    ) -> tuple[list[dict[str, Any]], LMResponse]:
        try:
            return await super().acall(lm, lm_kwargs, signature, demos, inputs)
        except AdapterParseError as exc:
            raise _both(first_error, exc) from exc


def _both(first: AdapterParseError, second: AdapterParseError) -> AdapterParseError:
    return AdapterParseError(
        adapter="ChatAdapter (then JSONAdapter as fallback)",
        signature=first.signature,
        field=first.field,
        lm_text=first.lm_text,
        reason=f"{first.reason}; the JSON fallback also failed: {second.reason} "
        f"(its reply: {second.lm_text[:300]!r})",
    )


def _schema_name(sig: type[Signature]) -> str:
    name = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in sig.__name__)
    return name[:64] or "outputs"


def _outputs_schema(sig: type[Signature], fields: list[Field]) -> dict[str, Any]:
    model = pydantic.create_model(  # type: ignore[call-overload]
        _schema_name(sig),
        **{
            f.name: (f.annotation, pydantic.Field(description=f.desc or None, **f.constraints))
            for f in fields
        },
    )
    return model.model_json_schema()
