"""Issue 15: deadlines hold against a hostile guest, and ``aexecute`` never blocks the loop.

The guest below digs out the session token (it can: it runs in the driver's process),
writes 1,000 forged tool-call frames at once and never reads its replies, with a tool
whose replies are large enough to fill any pipe. ``execute(code, timeout=1)`` must still
come back about a second later, and an event loop running ``aexecute`` must keep ticking.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable

import pytest

from dsx.sandbox import ExecutionResult, Sandbox

FLOOD = """
import os, sys
main = sys.modules['__main__']
frame = main._TOKEN + b' ' + main._dumps(
    {'type': 'call', 'id': main._STATE['exec_id'], 'seq': 1, 'tool': 'big', 'args_json': '[[], {}]'}
).encode() + b'\\n'
for _ in range(1000):
    os.write(1, frame)
import time
time.sleep(3600)
"""


def big() -> str:
    return "x" * 200_000


def _within(seconds: float, fn: Callable[[], ExecutionResult], sb: Sandbox) -> ExecutionResult:
    """Run ``fn`` in a thread; fail (and stop the session) if it takes over ``seconds``."""
    out: list[ExecutionResult | BaseException] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        sb.close()  # unblocks the host; the session is useless anyway
        thread.join(30)
        pytest.fail(f"execute(timeout=1) was still blocked after {seconds} s")
    assert not isinstance(out[0], BaseException), out[0]
    return out[0]


def _check(r: ExecutionResult) -> None:
    assert not r.ok and r.session_reset and r.error is not None
    assert r.error.type in ("SandboxProtocolError", "TimeoutError"), r.error
    assert len(r.tool_calls) <= 200  # forged frames are bounded too


def test_a_forged_call_flood_cannot_hold_execute_past_its_timeout(make_sandbox) -> None:
    sb = make_sandbox(tools=[big])
    began = time.monotonic()
    r = _within(15, lambda: sb.execute(FLOOD, timeout=1), sb)
    elapsed = time.monotonic() - began
    assert elapsed < 5, f"execute(timeout=1) took {elapsed:.1f} s"  # timeout + 1 s, generously
    _check(r)
    assert sb.execute("'usable'").value == "usable"


def test_the_event_loop_keeps_ticking_during_a_hostile_aexecute(make_sandbox) -> None:
    sb = make_sandbox(tools=[big])

    async def main() -> tuple[ExecutionResult, float, float]:
        gaps: list[float] = []
        stop = asyncio.Event()

        async def ticker() -> None:
            last = time.monotonic()
            while not stop.is_set():
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        task = asyncio.create_task(ticker())
        began = time.monotonic()
        try:
            r = await asyncio.wait_for(sb.aexecute(FLOOD, timeout=1), 15)
        finally:
            stop.set()
            await task
        return r, time.monotonic() - began, max(gaps)

    out: list[tuple[ExecutionResult, float, float]] = []
    thread = threading.Thread(target=lambda: out.append(asyncio.run(main())), daemon=True)
    # A full garbage collection late in a long pytest run stops every thread for a while
    # (0.79 s once in CI, where this test alone shows gaps of 10-50 ms): not what is measured.
    gc.collect()
    gc.disable()
    try:
        thread.start()
        thread.join(20)
    finally:
        gc.enable()
    if thread.is_alive():
        sb.close()
        thread.join(30)
        pytest.fail("the event loop was blocked: aexecute(timeout=1) did not return in 20 s")
    r, elapsed, worst_gap = out[0]
    assert elapsed < 5, f"aexecute(timeout=1) took {elapsed:.1f} s"
    assert worst_gap < 0.5, f"the event loop stalled for {worst_gap:.2f} s"
    _check(r)
    assert sb.execute("'usable'").value == "usable"


def test_a_guest_that_does_not_read_its_replies_is_replaced(make_sandbox) -> None:
    sb = make_sandbox(tools=[big])
    sb.execute("kept = 1")
    r = _within(15, lambda: sb.execute(FLOOD, timeout=30), sb)
    _check(r)
    assert r.duration < 5  # long before the 30 s timeout
    assert sb.execute("'kept' in globals()").value is False


def test_refused_calls_count_against_the_frame_budget(make_sandbox) -> None:
    sb = make_sandbox(max_tool_calls=3)
    r = sb.execute(
        "n = 0\nwhile True:\n    try:\n        nope()\n    except Exception:\n        n += 1",
        tools={"nope": lambda: None},
        timeout=30,
    )
    assert not r.ok and r.session_reset and r.duration < 5
    assert r.error is not None and r.error.type == "SandboxProtocolError"
    assert "messages" in r.error.message
    assert sb.execute("2 + 2").value == 4


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_well_behaved_tool_calls_still_work(make_sandbox, mode: str) -> None:
    sb = make_sandbox(tools=[big], max_tool_calls=50)
    code = "sum(len(big()) for _ in range(50))"
    r = sb.execute(code) if mode == "sync" else asyncio.run(sb.aexecute(code))
    assert r.ok and r.value == 50 * 200_000, r.error
    assert len(r.tool_calls) == 50


_DEEP_FRAME = """
import os, sys, time
m = sys.modules['__main__']
os.write(1, m._TOKEN + b' ' + b'[' * 100_000 + b']' * 100_000 + b'\\n')
time.sleep(5)
"""

_DEEP_VALUE = """
import os, sys, time
m = sys.modules['__main__']
deep = '[' * 100_000 + ']' * 100_000
os.write(1, m._TOKEN + b' ' + m._dumps({
    'type': 'result', 'id': m._STATE['exec_id'], 'ok': True, 'has_value': True,
    'value_json': deep, 'value_repr': 'too deep',
}).encode() + b'\\n')
time.sleep(5)
"""


def test_deeply_nested_json_from_the_guest_never_escapes_as_recursion_error(sandbox) -> None:
    r = sandbox.execute(_DEEP_FRAME, timeout=10)
    assert not r.ok and r.session_reset and r.error is not None
    assert r.error.type == "SandboxProtocolError"
    assert "nested" in r.error.message or "JSON elements" in r.error.message
    r = sandbox.execute(_DEEP_VALUE, timeout=10)  # the guest may lie about its own result
    assert r.ok and r.value == "too deep"
