"""Executing code: results, state, errors, SUBMIT, limits on output; on both backends."""

from __future__ import annotations

import asyncio
import threading

import pytest

from dsx.sandbox import ExecutionResult, Sandbox, SandboxClosed, SandboxError, create_sandbox


def test_last_expression_value_as_json(sandbox: Sandbox) -> None:
    r = sandbox.execute("x = 20\n{'sum': x + 22, 'items': [1, 2.5, None, True, 'é']}")
    assert r.ok and r.error is None
    assert r.has_value
    assert r.value == {"sum": 42, "items": [1, 2.5, None, True, "é"]}
    assert r.value_repr == "{'sum': 42, 'items': [1, 2.5, None, True, 'é']}"
    assert not r.session_reset and not r.timed_out and r.duration > 0


def test_non_json_value_comes_back_as_repr(sandbox: Sandbox) -> None:
    r = sandbox.execute("{1, 2}")
    assert r.ok and r.has_value and r.value == "{1, 2}" and r.value_repr == "{1, 2}"
    r = sandbox.execute("class P:\n    def __repr__(self): return 'P()'\nP()")
    assert r.value == "P()"


def test_no_value_for_statements_or_none(sandbox: Sandbox) -> None:
    for code in ("x = 1", "None", "print('hi')", ""):
        r = sandbox.execute(code)
        assert r.ok and not r.has_value and r.value is None and r.value_repr is None, code


def test_stdout_and_stderr_are_captured(sandbox: Sandbox) -> None:
    r = sandbox.execute("import sys\nprint('out', 1)\nprint('err', file=sys.stderr)\n3")
    assert (r.stdout, r.stderr, r.value) == ("out 1\n", "err\n", 3)


def test_raw_fd_writes_are_output_too(sandbox: Sandbox) -> None:
    r = sandbox.execute("import os\nos.write(1, b'raw out\\n')\nos.write(2, b'raw err\\n')")
    assert "raw out\n" in r.stdout
    if sandbox.backend == "docker":
        # Docker copies the container's stdout and stderr separately: a raw fd-2 write
        # can arrive just after the result and then shows up with the next execution.
        r = sandbox.execute("import time\ntime.sleep(0.2)") if "raw err" not in r.stderr else r
    assert "raw err\n" in r.stderr


def test_state_persists_between_executions(sandbox: Sandbox) -> None:
    sandbox.execute("import math\ncounter = 1\ndef bump(n):\n    global counter\n    counter += n")
    sandbox.execute("bump(41)")
    r = sandbox.execute("counter, math.floor(2.7)")
    assert r.value == [42, 2]


def test_reset_clears_state(sandbox: Sandbox) -> None:
    sandbox.execute("secret = 1\nimport json")
    sandbox.reset()
    r = sandbox.execute("secret")
    assert not r.ok and r.error is not None and r.error.type == "NameError"
    r = sandbox.execute("import sys\n'json' in sys.modules")
    assert r.value is False


def test_variables_are_injected(sandbox: Sandbox) -> None:
    r = sandbox.execute(
        "question.upper(), sum(nums), cfg['k']",
        variables={"question": "why", "nums": [1, 2, 3], "cfg": {"k": None}},
    )
    assert r.value == ["WHY", 6, None]


def test_bad_variables_raise_on_the_host(sandbox: Sandbox) -> None:
    with pytest.raises(TypeError, match="JSON"):
        sandbox.execute("x", variables={"x": object()})
    with pytest.raises(ValueError, match="identifier"):
        sandbox.execute("x", variables={"not valid": 1})
    assert sandbox.execute("1").value == 1


def test_error_traceback_points_into_the_submitted_code(sandbox: Sandbox) -> None:
    sandbox.execute("def helper(d):\n    return d['missing']")
    r = sandbox.execute("x = 1\ny = 2\nhelper({})\n")
    assert not r.ok and r.error is not None
    assert r.error.type == "KeyError" and r.error.message == "'missing'"
    assert r.error.line == 3
    assert r.error.traceback[0] == '  File "<cell 2>", line 3, in <module>\n    helper({})'
    assert r.error.traceback[-1] == (
        "  File \"<cell 1>\", line 2, in helper\n    return d['missing']"
    )
    assert "_driver" not in "".join(r.error.traceback)
    assert r.error.format().endswith("KeyError: 'missing'")


def test_syntax_error_names_the_line(sandbox: Sandbox) -> None:
    r = sandbox.execute("a = 1\nb = (2 +\nc = 3")
    assert not r.ok and r.error is not None and r.error.type == "SyntaxError"
    assert r.error.line in (2, 3)
    assert "<cell 1>" in r.error.traceback[-1]


def test_exceptions_and_exits_do_not_kill_the_session(sandbox: Sandbox) -> None:
    sandbox.execute("keep = 'me'")
    for code, kind in [
        ("raise ValueError('bad')", "ValueError"),
        ("import sys\nsys.exit(3)", "SystemExit"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
        ("def f(): return f()\nf()", "RecursionError"),
    ]:
        r = sandbox.execute(code)
        assert not r.ok and r.error is not None and r.error.type == kind, (code, r.error)
        assert not r.session_reset
    assert sandbox.execute("keep").value == "me"


def test_submit_ends_the_code_with_a_final_answer(sandbox: Sandbox) -> None:
    r = sandbox.execute("x = 6 * 7\nSUBMIT(answer=x, why='math')\nprint('never')")
    assert r.ok and r.submitted and r.final == {"answer": 42, "why": "math"}
    assert r.stdout == "" and not r.has_value
    assert sandbox.execute("SUBMIT(1, 'b')").final == [1, "b"]
    assert sandbox.execute("SUBMIT({'k': {3}})").final == "{'k': {3}}"  # not JSON: repr
    r = sandbox.execute("SUBMIT(1, k=2)")
    assert not r.ok and r.error is not None and r.error.type == "TypeError"
    assert not sandbox.execute("1").submitted


def test_output_is_capped(make_sandbox) -> None:
    sb = make_sandbox(max_output=1000)
    r = sb.execute("print('x' * 5000)\nimport os\nos.write(1, b'y' * 5000)\n7")
    assert r.ok and r.value == 7
    assert len(r.stdout) <= 1000 and r.stdout.startswith("xxx") and r.stdout_truncated
    r = sb.execute("print('small')")
    assert r.stdout == "small\n" and not r.stdout_truncated


async def test_aexecute_and_async_context_manager(backend: str, make_sandbox) -> None:
    make_sandbox()  # skips when the backend cannot run
    async with create_sandbox(backend) as sb:
        r = await sb.aexecute("v = 5\nv * 2")
        assert r.value == 10
        r = await sb.aexecute("while True: pass", timeout=0.5)
        assert r.timed_out
        assert (await sb.aexecute("1 + 1")).value == 2
    assert sb.closed


def test_closed_session_refuses_work(backend: str, make_sandbox) -> None:
    make_sandbox()
    with create_sandbox(backend) as sb:
        assert sb.started
    with pytest.raises(SandboxClosed):
        sb.execute("1")


def test_one_execution_at_a_time(sandbox: Sandbox) -> None:
    # The guest calls a host tool that holds the execution open until the second call has
    # been tried: no sleep decides whether the first execution is still running.
    inside = threading.Event()
    release = threading.Event()
    results: list[ExecutionResult] = []

    def hold() -> str:
        inside.set()
        release.wait(30)
        return "done"

    t = threading.Thread(target=lambda: results.append(sandbox.execute("hold()", tools=[hold])))
    t.start()
    try:
        assert inside.wait(60), "the first execution never reached its tool"
        with pytest.raises(SandboxError, match="one execution at a time"):
            sandbox.execute("1")
    finally:
        release.set()
        t.join()
    assert results[0].value == "done"
    assert sandbox.execute("1").value == 1  # free again once the first one ended


def test_lazy_start_on_first_execute(backend: str, make_sandbox) -> None:
    make_sandbox()
    sb = create_sandbox(backend)
    try:
        assert not sb.started
        assert sb.execute("2 ** 10").value == 1024 and sb.started
    finally:
        sb.close()


def test_concurrent_async_sessions_are_independent(backend: str, make_sandbox) -> None:
    boxes = [make_sandbox() for _ in range(3)]

    async def main() -> list[ExecutionResult]:
        return await asyncio.gather(
            *(
                b.aexecute(f"import time\ntime.sleep(0.3)\nme = {i}\nme", timeout=5)
                for i, b in enumerate(boxes)
            )
        )

    results = asyncio.run(main())
    assert [r.value for r in results] == [0, 1, 2]
    assert [b.execute("me").value for b in boxes] == [0, 1, 2]
