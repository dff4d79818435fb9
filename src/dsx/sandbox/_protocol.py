"""The host side of the guest protocol: framing, message parsing, result assembly.

Both backends speak it: the host writes one JSON object per line to the guest's stdin;
the guest writes ``<token> <json>`` lines to its stdout (see ``_driver.py``). Everything
the guest sends is untrusted: sizes are capped, fields are type-checked, and anything
malformed is a :class:`ProtocolViolation`, after which the interpreter is replaced.
"""

from __future__ import annotations

import json
import re
import secrets
from functools import cache
from pathlib import Path
from typing import Any

from dsx.sandbox._types import (
    MAX_FRAME_ELEMENTS,
    MAX_JSON_DEPTH,
    MAX_JSON_ELEMENTS,
    ExecutionError,
    ExecutionResult,
    SandboxError,
    ToolCall,
)

__all__ = [
    "PROTOCOL_VERSION",
    "FrameReader",
    "JSONBudgetExceeded",
    "ProtocolViolation",
    "assemble_result",
    "driver_source",
    "loads_bounded",
    "new_token",
]

PROTOCOL_VERSION = 2


class ProtocolViolation(SandboxError):
    """The guest broke the protocol (malformed or oversized message)."""


class JSONBudgetExceeded(ProtocolViolation, ValueError):
    """Guest JSON with more elements or deeper nesting than its budget allows."""


# A JSON string literal, escapes included (the unrolled form runs in C without backtracking).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")


def loads_bounded(data: bytes | str, *, max_elements: int, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` of guest data, refusing it before decoding when it is too big a tree.

    A few bytes of JSON can decode into many objects (``[{}]`` is 3 bytes and about 70 of
    host memory), so the element count (values inside containers, bounded from above by
    commas and opening brackets outside strings) and the nesting depth are checked on the
    text first.

    Raises:
        JSONBudgetExceeded: over ``max_elements`` or ``max_depth``.
        ValueError: not JSON (including bad UTF-8).
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) <= max_elements and raw.count(b"[") + raw.count(b"{") <= max_depth:
        # Within budget whatever is inside strings (every element takes a byte): the
        # common case, small messages, costs two counts.
        return _loads(raw)
    bare = _STRING.sub(b'""', raw) if b'"' in raw else raw
    opens = bare.count(b"[") + bare.count(b"{")
    elements = bare.count(b",") + opens
    if elements > max_elements:
        raise JSONBudgetExceeded(f"more than {max_elements} JSON elements ({elements})")
    if opens > max_depth:
        depth = deepest = 0
        for bracket in _BRACKETS.findall(bare):
            depth += 1 if bracket in b"[{" else -1
            deepest = max(deepest, depth)
        if deepest > max_depth:
            raise JSONBudgetExceeded(f"JSON nested deeper than {max_depth} levels ({deepest})")
    return _loads(raw)


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except RecursionError:
        raise JSONBudgetExceeded("JSON nested too deeply") from None


@cache
def driver_source() -> str:
    """Source of the guest driver, passed to the guest interpreter with ``-c``."""
    return Path(__file__).with_name("_driver.py").read_text(encoding="utf-8")


def new_token() -> str:
    """A random per-session marker that frames the guest's protocol lines."""
    return "\x1edsx-" + secrets.token_hex(12) + "\x1e"


class _Bounded:
    """Text kept up to ``limit`` characters; the rest is counted as dropped."""

    __slots__ = ("limit", "parts", "size", "truncated")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False

    def add(self, data: bytes) -> None:
        if not data:
            return
        room = self.limit - self.size
        if room <= 0:
            self.truncated = True
            return
        text = data[: room * 4].decode("utf-8", "replace")
        if len(text) > room or len(data) > room * 4:
            self.truncated = True
            text = text[:room]
        self.parts.append(text)
        self.size += len(text)

    def take(self) -> tuple[str, bool]:
        """The text kept so far and whether some was dropped; starts afresh."""
        text, truncated = "".join(self.parts), self.truncated
        self.parts.clear()
        self.size = 0
        self.truncated = False
        return text, truncated


class FrameReader:
    """Splits the guest's stdout bytes into protocol messages and raw output.

    Raw output (the guest writing to fd 1 directly, bypassing the captured ``print``) is
    kept up to ``max_output`` characters per execution.
    """

    def __init__(self, token: str, *, max_message: int, max_output: int) -> None:
        self.token = token.encode("ascii")
        self.max_message = max_message
        #: Bytes fed (stdout and stderr) since the count was last reset.
        self.received = 0
        self.raw = _Bounded(max_output)
        self.raw_err = _Bounded(max_output)
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Add bytes from the guest's stdout; return the complete messages in them."""
        self.received += len(data)
        buf = self._buf
        buf += data
        messages: list[dict[str, Any]] = []
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            line = bytes(buf[start:end])
            start = end + 1
            if len(line) > self.max_message and self.token in line:  # whole, in one read
                raise ProtocolViolation(
                    f"the guest sent a message over the {self.max_message}-byte limit"
                )
            self._line(line, messages)
        del buf[:start]
        if len(buf) > self.max_message:
            if self.token in buf:
                raise ProtocolViolation(
                    f"the guest sent a message over the {self.max_message}-byte limit"
                )
            # Raw output without a newline: pass it on rather than buffer it.
            self.raw.add(bytes(buf))
            buf.clear()
        return messages

    def feed_stderr(self, data: bytes) -> None:
        self.received += len(data)
        self.raw_err.add(data)

    def _line(self, line: bytes, messages: list[dict[str, Any]]) -> None:
        at = line.find(self.token)
        if at < 0:
            self.raw.add(line + b"\n")
            return
        self.raw.add(line[:at])
        payload = line[at + len(self.token) :]
        try:
            msg = loads_bounded(payload, max_elements=MAX_FRAME_ELEMENTS)
        except JSONBudgetExceeded as exc:
            raise ProtocolViolation(f"the guest sent a message with {exc}") from None
        except ValueError as exc:
            raise ProtocolViolation(f"the guest sent malformed JSON: {exc}") from None
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            raise ProtocolViolation("the guest sent a message that is not a typed object")
        messages.append(msg)


def _text(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _decode(raw_json: Any, fallback: Any, max_elements: int) -> Any:
    if isinstance(raw_json, str):
        try:
            return loads_bounded(raw_json, max_elements=max_elements)
        except ValueError:  # too big a tree, or not JSON: the (truncated) repr will do
            pass
    return fallback


def _error(obj: Any, limit: int) -> ExecutionError | None:
    if not isinstance(obj, dict):
        return None
    frames = obj.get("traceback")
    line = obj.get("line")
    return ExecutionError(
        type=_text(obj.get("type"), 200) or "Exception",
        message=_text(obj.get("message"), limit),
        traceback=tuple(_text(f, 4000) for f in frames[:50]) if isinstance(frames, list) else (),
        line=line if isinstance(line, int) and not isinstance(line, bool) else None,
    )


def assemble_result(
    msg: dict[str, Any],
    *,
    reader: FrameReader,
    tool_calls: list[ToolCall],
    duration: float,
    max_output: int,
    max_elements: int = MAX_JSON_ELEMENTS,
) -> ExecutionResult:
    """An :class:`ExecutionResult` from the guest's ``result`` message, checked field by field."""
    stdout = _text(msg.get("stdout"), max_output)
    raw_out, out_cut = reader.raw.take()
    stdout = (stdout + raw_out)[:max_output] if raw_out else stdout
    stderr = _text(msg.get("stderr"), max_output)
    raw_err, err_cut = reader.raw_err.take()
    stderr = (stderr + raw_err)[:max_output] if raw_err else stderr
    has_value = msg.get("has_value") is True
    value_repr = _text(msg.get("value_repr"), max_output) if has_value else None
    submitted = msg.get("submitted") is True
    final_repr = _text(msg.get("final_repr"), max_output) if submitted else None
    error = _error(msg.get("error"), max_output)
    if isinstance(msg.get("driver_error"), str):
        error = ExecutionError("SandboxDriverError", _text(msg["driver_error"], 1000))
    ok = msg.get("ok") is True and error is None
    return ExecutionResult(
        ok=ok,
        stdout=stdout,
        stderr=stderr,
        value=_decode(msg.get("value_json"), value_repr, max_elements) if has_value else None,
        value_repr=value_repr,
        has_value=has_value,
        submitted=submitted,
        final=_decode(msg.get("final_json"), final_repr, max_elements) if submitted else None,
        error=error,
        tool_calls=tuple(tool_calls),
        duration=duration,
        stdout_truncated=msg.get("stdout_truncated") is True or out_cut or err_cut,
    )
