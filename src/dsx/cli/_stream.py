"""``dsx run --stream``: print each output field as the LM writes it.

With ``--json`` the stream is machine-readable, one JSON object per line (NDJSON), each
with an ``event``:

* ``{"event": "chunk", "predictor": NAME, "field": FIELD, "chunk": TEXT, "last": BOOL}``
  as a field's text arrives (``last`` on its final piece);
* ``{"event": "status", "message": TEXT}`` when a module, LM or tool starts or ends;
* ``{"event": "result", "outputs": {...}}`` once the program returned: its outputs, the
  same object plain ``--json`` prints.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

__all__ = ["run_streaming", "run_streaming_json"]


def _listeners(program: Any) -> list[Any]:
    from dsx.runtime.streaming import StreamListener

    return [
        StreamListener(field, predict=predictor, predict_name=name, allow_reuse=True)
        for name, predictor in program.named_predictors()
        for field in predictor.signature.output_fields
    ]


def run_streaming_json(program: Any, inputs: dict[str, Any], *, out: TextIO | None = None) -> Any:
    """Run ``program`` on ``inputs``, writing its stream as NDJSON events (see the module
    docstring) but not the final ``result`` line, which the caller writes with the outputs.

    Returns the program's result.
    """
    from dsx.runtime.streaming import StatusMessage, StreamResponse, streamify

    out = out or sys.stdout
    stream = streamify(program, stream_listeners=_listeners(program), async_streaming=False)
    result: Any = None
    for item in stream(**inputs):
        if isinstance(item, StreamResponse):
            event: dict[str, Any] = {
                "event": "chunk",
                "predictor": item.predict_name,
                "field": item.signature_field_name,
                "chunk": item.chunk,
                "last": bool(item.is_last_chunk),
            }
        elif isinstance(item, StatusMessage):
            event = {"event": "status", "message": item.message}
        else:
            result = item
            continue
        out.write(json.dumps(event, ensure_ascii=False) + "\n")
        out.flush()
    return result


def run_streaming(
    program: Any, inputs: dict[str, Any], *, out: TextIO | None = None
) -> tuple[Any, set[str]]:
    """Run ``program`` on ``inputs``, printing every predictor's output fields as they come
    (``name: text``, one line per field) and status lines to stderr.

    Returns the result and the fields already shown with their final value, which the
    caller need not print again.
    """
    from dsx.runtime.streaming import StatusMessage, StreamResponse, streamify

    out = out or sys.stdout
    stream = streamify(program, stream_listeners=_listeners(program), async_streaming=False)
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
