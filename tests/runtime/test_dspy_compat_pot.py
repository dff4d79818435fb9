"""ProgramOfThought's interpreter API (issue 21, item 8): ``interpreter_factory=`` makes an
interpreter per call (and shuts it down), a call may pass its own, and a user's own
interpreter class plugs in with DSPy's protocol (``execute``, ``start``, ``shutdown``)."""

from __future__ import annotations

import asyncio

import pytest

import dsx
from dsx.sandbox import (
    CodeExecutionError,
    ExecutionError,
    ExecutionResult,
    FinalOutput,
    PythonInterpreter,
)
from dsx.testing import DummyLM


class Abacus:
    """A user's own "sandbox": it knows a few programs and records what it was asked."""

    made: list[Abacus] = []

    def __init__(self) -> None:
        self.codes: list[str] = []
        self.started = self.shut = 0
        Abacus.made.append(self)

    def start(self) -> None:
        self.started += 1

    def shutdown(self) -> None:
        self.shut += 1

    def execute(self, code: str, variables: dict | None = None) -> object:
        self.codes.append(code)
        if code == "1/0":
            result = ExecutionResult(
                ok=False, error=ExecutionError("ZeroDivisionError", "division by zero", line=1)
            )
            raise CodeExecutionError("ZeroDivisionError: division by zero", result=result)
        if code == "x = (":
            raise SyntaxError("'(' was never closed", ("<cell>", 1, 5, "x = (", 1, 6))
        if code == "SUBMIT(answer=7)":
            return FinalOutput({"answer": 7})
        if code == "6 * 7":
            return 42
        raise AssertionError(f"unexpected code {code!r}")


@pytest.fixture(autouse=True)
def fresh():
    Abacus.made = []


def test_an_interpreter_per_call_from_the_factory_errors_fed_back():
    lm = DummyLM(
        [
            {"reasoning": "r", "code": "1/0"},
            {"reasoning": "fix", "code": "x = ("},
            {"reasoning": "fix", "code": "SUBMIT(answer=7)"},
        ]
    )
    pot = dsx.ProgramOfThought("question -> answer: int", interpreter_factory=Abacus)
    with dsx.context(lm=lm):
        pred = pot(question="3+4?")
    assert pred.answer == 7
    (abacus,) = Abacus.made
    assert abacus.codes == ["1/0", "x = (", "SUBMIT(answer=7)"]
    assert (abacus.started, abacus.shut) == (1, 1)
    fixes = [entry["messages"][-1]["content"] for entry in list(lm.history)[1:]]
    assert "ZeroDivisionError: division by zero" in fixes[0]
    assert "SyntaxError" in fixes[1] and "was never closed" in fixes[1]


def test_a_value_goes_to_the_answer_step_and_each_call_gets_its_own():
    lm = DummyLM(
        [{"reasoning": "r", "code": "6 * 7"}, {"reasoning": "it gave 42", "answer": 42}] * 2
    )
    pot = dsx.ProgramOfThought("question -> answer: int", interpreter_factory=Abacus)
    with dsx.context(lm=lm):
        assert pot(question="6*7?").answer == 42
        assert asyncio.run(pot.acall(question="6*7?")).answer == 42
    assert len(Abacus.made) == 2 and all(a.shut == 1 for a in Abacus.made)
    answer_prompt = lm.history[1]["messages"][-1]["content"]
    assert "value: 42" in answer_prompt


def test_a_caller_owned_interpreter_is_used_and_left_running():
    mine = Abacus()
    lm = DummyLM([{"reasoning": "r", "code": "SUBMIT(answer=7)"}])
    pot = dsx.ProgramOfThought("question -> answer: int", interpreter_factory=Abacus)
    with dsx.context(lm=lm):
        assert pot(mine, question="3+4?").answer == 7
    assert Abacus.made == [mine] and mine.codes == ["SUBMIT(answer=7)"]
    assert (mine.started, mine.shut) == (0, 0)


def test_dsx_s_own_python_interpreter_as_the_factory():
    lm = DummyLM([{"reasoning": "r", "code": "SUBMIT(answer=sum(range(5)))"}])
    pot = dsx.ProgramOfThought("question -> answer: int", interpreter_factory=PythonInterpreter)
    with dsx.context(lm=lm):
        assert pot(question="0+1+2+3+4?").answer == 10


def test_a_bad_factory_or_interpreter_is_a_clear_error():
    with pytest.raises(TypeError, match="interpreter_factory takes a zero-argument callable"):
        dsx.ProgramOfThought("q -> a", interpreter_factory=Abacus())
    with pytest.raises(TypeError, match="interpreter_factory takes a zero-argument callable"):
        dsx.ProgramOfThought("q -> a", interpreter_factory="wasmtime")
    pot = dsx.ProgramOfThought("q -> a")
    with pytest.raises(TypeError, match="needs an execute\\(code\\) method"):
        pot(object(), q="x")
