"""PythonInterpreter (the DSPy-style face) on a real sandbox, and dsx.testing's FakeSandbox."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dsx.sandbox import (
    CodeExecutionError,
    ExecutionResult,
    FinalOutput,
    PythonInterpreter,
    Sandbox,
    SandboxError,
)
from dsx.testing.fake_sandbox import FakeSandbox, fake_result


@pytest.mark.sandbox
def test_python_interpreter_returns_what_the_code_produced(
    wasm_module: None, tmp_path: Path
) -> None:
    (tmp_path / "in.txt").write_text("12")

    def lookup(key: str) -> int:
        return {"a": 1}[key]

    with PythonInterpreter(
        tools=[lookup], enable_read_paths=[tmp_path], output_fields=["answer", "note"]
    ) as interp:
        assert interp("print('hi')") == "hi\n"
        assert (
            interp(
                "x = int(open(path).read())\nx + lookup('a')", {"path": str(tmp_path / "in.txt")}
            )
            == 13
        )
        assert interp("y = 1") is None
        assert interp("SUBMIT(x, 'ok')") == FinalOutput({"answer": 12, "note": "ok"})
        assert interp("SUBMIT(answer=1, note='n')") == FinalOutput({"answer": 1, "note": "n"})
        with pytest.raises(SyntaxError):
            interp("def (")
        with pytest.raises(CodeExecutionError) as info:
            interp("print('before')\nlookup('zz')")
        assert "KeyError: 'zz'" in str(info.value) and "before" in str(info.value)
        assert info.value.result.error is not None and info.value.result.error.line == 2
        assert interp.last_result is info.value.result
        assert "lookup()" in interp.execution_instructions
        assert list(interp.tools) == ["lookup"]
        assert asyncio.run(interp.aexecute("x")) == 12


def test_fake_sandbox_replays_a_script_and_records_calls() -> None:
    sb = FakeSandbox(["out\n", {"value": 3}, {"final": {"a": 1}}, {"error": "ValueError: bad"}])
    with sb:
        r1 = sb.execute("print('out')", variables={"q": 1})
        assert (r1.ok, r1.stdout) == (True, "out\n")
        r2 = sb.execute("3")
        assert r2.has_value and r2.value == 3 and r2.value_repr == "3"
        assert sb.execute("SUBMIT(a=1)").final == {"a": 1}
        r4 = sb.execute("raise ValueError('bad')")
        assert not r4.ok and r4.error is not None and str(r4.error) == "ValueError: bad"
        with pytest.raises(AssertionError, match="no scripted result"):
            sb.execute("more")
    assert [e.code for e in sb.executions][:2] == ["print('out')", "3"]
    assert sb.executions[0].variables == {"q": 1}
    assert isinstance(sb, Sandbox) and sb.closed


def test_fake_sandbox_functions_can_use_tools_and_raise() -> None:
    def search(q: str) -> list[str]:
        return [q * 2]

    def script(code: str, variables: dict, tools: dict) -> dict:
        return {"value": tools["search"](variables["q"])}

    sb = FakeSandbox([script, SandboxError("engine died")], tools=[search], default="done")
    r = sb.execute("search(q)", variables={"q": "ab"})
    assert (
        r.value == ["abab"]
        and r.tool_calls[0].name == "search"
        and r.tool_calls[0].result == ["abab"]
    )
    with pytest.raises(SandboxError, match="engine died"):
        sb.execute("x")
    assert asyncio.run(sb.aexecute("anything")).stdout == "done"
    assert isinstance(fake_result(ok=False), ExecutionResult)


def test_python_interpreter_over_a_fake() -> None:
    interp = PythonInterpreter(sandbox=FakeSandbox([{"final": 5}, {"value": [1]}, {"stdout": "s"}]))
    assert interp("SUBMIT(5)") == FinalOutput(5)
    assert interp("[1]") == [1]
    assert interp("print('s')") == "s"
