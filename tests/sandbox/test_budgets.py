"""Issue 15: what the guest sends is parsed and kept on a budget.

JSON is decoded only within element and depth budgets (a few bytes of JSON can decode
into many objects), tool-call records keep bounded representations, one execution may
send only so many bytes, and whatever the guest sends fails as a ``SandboxError``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dsx.sandbox import SandboxError
from dsx.sandbox._protocol import (
    FrameReader,
    JSONBudgetExceeded,
    ProtocolViolation,
    loads_bounded,
    new_token,
)
from dsx.sandbox._types import MAX_JSON_DEPTH, TOOL_RECORD_LIMIT

TOKEN = new_token()

AMPLIFY = """
payload = [{}] * 2_600_000
refused = []
for _ in range(4):
    try:
        sink(payload)
    except ValueError as exc:
        refused.append(type(exc).__name__)
del payload
print(refused)
[{}] * 2_600_000
"""


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def sink(x: object) -> int:
    return len(x)  # type: ignore[arg-type]


def echo(x: object) -> object:
    return x


# -- without a guest ------------------------------------------------------------------


def test_json_budgets_are_checked_before_decoding() -> None:
    assert loads_bounded('{"a": [1, "x,[{"], "b": {}}', max_elements=10) == {
        "a": [1, "x,[{"],
        "b": {},
    }
    with pytest.raises(JSONBudgetExceeded, match="elements"):
        loads_bounded("[" + "{}," * 1000 + "{}]", max_elements=500)
    deep = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    with pytest.raises(JSONBudgetExceeded, match="deeper"):
        loads_bounded(deep, max_elements=10_000)
    assert loads_bounded('"\\"[[[[" ', max_elements=0, max_depth=1) == '"[[[['


def test_every_frame_is_size_checked_even_one_that_arrives_whole() -> None:
    reader = FrameReader(TOKEN, max_message=64 * 1024, max_output=100)
    frame = TOKEN.encode() + b" " + json.dumps({"type": "x", "s": "y" * 100_000}).encode()
    with pytest.raises(ProtocolViolation, match="over the 65536-byte limit"):
        reader.feed(frame + b"\n")


@pytest.mark.parametrize(
    "payload",
    [b"\xff\xfe{}", b'{"type": "x", "s": "\xc3"}', b"[" * 5000 + b"]" * 5000, b"{" * 3000],
    ids=["bad-utf8-start", "bad-utf8-inside", "deep", "unclosed"],
)
def test_anything_the_guest_sends_fails_as_a_sandbox_error(payload: bytes) -> None:
    reader = FrameReader(TOKEN, max_message=1 << 20, max_output=100)
    with pytest.raises(SandboxError):
        reader.feed(TOKEN.encode() + b" " + payload + b"\n")
    assert issubclass(ProtocolViolation, SandboxError)


# -- with a real guest ----------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_a_json_amplification_payload_does_not_grow_the_host(make_sandbox) -> None:
    sb = make_sandbox(tools=[sink])
    before = _rss_bytes()
    r = sb.execute(AMPLIFY, timeout=60)
    assert r.ok, r.error
    assert r.stdout.strip() == str(["ValueError"] * 4)  # refused before decoding
    assert all(not c.ok and "too large" in (c.error or "") for c in r.tool_calls)
    assert isinstance(r.value, str) and r.value.startswith("[{}, {}")  # the repr, truncated
    # Four 7.8 MB payloads and a final value each decoded to ~185 MiB of objects before.
    assert _rss_bytes() - before < 100 * 2**20


def test_tool_call_records_keep_bounded_representations(sandbox) -> None:
    r = sandbox.execute("len(echo('x' * 100_000))", tools=[echo])
    assert r.ok and r.value == 100_000  # the tool got it whole, and the guest its result
    (call,) = r.tool_calls
    assert call.truncated and call.kwargs == {}
    assert isinstance(call.args[0], str) and len(call.args[0]) < TOOL_RECORD_LIMIT + 100
    assert isinstance(call.result, str) and len(call.result) < TOOL_RECORD_LIMIT + 100
    small = sandbox.execute("echo([1, 2])", tools=[echo]).tool_calls[0]
    assert small.args == ([1, 2],) and small.result == [1, 2] and not small.truncated


def test_one_execution_may_send_only_so_many_bytes(make_sandbox) -> None:
    sb = make_sandbox(max_message_size=64 * 1024, max_execution_bytes=1 << 20)
    code = "import os\nfor _ in range(64):\n    os.write(1, b'z' * 65536)\n'done'"
    r = sb.execute(code, timeout=30)
    assert not r.ok and r.error is not None and r.error.type == "SandboxProtocolError"
    assert "max_execution_bytes" in r.error.message and r.session_reset
    assert sb.execute("1 + 1").value == 2
