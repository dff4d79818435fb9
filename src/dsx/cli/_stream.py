"""``dsx run --stream``: print each output field as the LM writes it."""

from __future__ import annotations

import sys
from typing import Any, TextIO

__all__ = ["run_streaming"]


def run_streaming(
    program: Any, inputs: dict[str, Any], *, out: TextIO | None = None
) -> tuple[Any, set[str]]:
    """Run ``program`` on ``inputs``, printing every predictor's output fields as they come
    (``name: text``, one line per field) and status lines to stderr.

    Returns the result and the fields already shown with their final value, which the
    caller need not print again.
    """
    from dsx.runtime.streaming import StatusMessage, StreamListener, StreamResponse, streamify

    out = out or sys.stdout
    listeners = [
        StreamListener(field, predict=predictor, predict_name=name, allow_reuse=True)
        for name, predictor in program.named_predictors()
        for field in predictor.signature.output_fields
    ]
    stream = streamify(program, stream_listeners=listeners, async_streaming=False)
    shown: dict[str, str] = {}
    open_field: tuple[str, str] | None = None
    result: Any = None
    for item in stream(**inputs):
        if isinstance(item, StreamResponse):
            key = (item.predict_name, item.signature_field_name)
            if open_field != key:
                if open_field is not None:
                    out.write("\n")
                out.write(f"{item.signature_field_name}: ")
                shown[item.signature_field_name] = ""
                open_field = key
            out.write(item.chunk)
            shown[item.signature_field_name] += item.chunk
            if item.is_last_chunk:
                out.write("\n")
                open_field = None
            out.flush()
        elif isinstance(item, StatusMessage):
            print(f"[{item.message}]", file=sys.stderr, flush=True)
        else:
            result = item
    if open_field is not None:
        out.write("\n")
    values = result.to_dict() if hasattr(result, "to_dict") else {}
    same = {k for k, v in shown.items() if isinstance(values.get(k), str) and values[k] == v}
    return result, same
