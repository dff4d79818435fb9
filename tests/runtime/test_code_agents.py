"""ProgramOfThought and CodeAct: scripted LMs, a fake sandbox for the flows, real Wasmtime for the real thing."""

from __future__ import annotations

from pathlib import Path

import pytest

import dsx
from dsx.testing import DummyLM
from dsx.testing.fake_sandbox import FakeSandbox, fake_result

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def fake(*entries):
    sessions = []

    def factory(**options):
        sessions.append(FakeSandbox(list(entries), **options))
        return sessions[-1]

    factory.sessions = sessions
    return factory


def test_program_of_thought_feeds_errors_back_and_uses_submit():
    sandbox = fake(
        fake_result(error="ZeroDivisionError: division by zero", stdout=""),
        fake_result(final={"answer": 7}),
    )
    lm = DummyLM(
        [
            {"reasoning": "r", "code": "```python\n1/0\n```"},
            {"reasoning": "fix", "code": "SUBMIT(answer=7)"},
        ]
    )
    with dsx.context(lm=lm):
        pred = dsx.ProgramOfThought("question -> answer: int", sandbox=sandbox)(question="3+4?")
    assert pred.answer == 7 and pred.code == "SUBMIT(answer=7)"
    assert [e.code for e in sandbox.sessions[0].executions] == ["1/0", "SUBMIT(answer=7)"]
    fix_prompt = lm.history[1]["messages"][-1]["content"]
    assert (
        "<<< previous_code >>>\n1/0" in fix_prompt
        and "ZeroDivisionError: division by zero" in fix_prompt
    )


def test_program_of_thought_extracts_from_output_and_gives_up_after_max_iters():
    sandbox = fake(fake_result(stdout="42\n"))
    lm = DummyLM(
        [{"reasoning": "r", "code": "print(6*7)"}, {"reasoning": "it printed 42", "answer": 42}]
    )
    with dsx.context(lm=lm):
        assert (
            dsx.ProgramOfThought("question -> answer: int", sandbox=sandbox)(question="6*7?").answer
            == 42
        )
    failing = fake(*[fake_result(error="NameError: name 'x' is not defined")] * 2)
    lm2 = DummyLM([{"reasoning": "r", "code": "x"}, {"reasoning": "r", "code": "x"}])
    with dsx.context(lm=lm2), pytest.raises(dsx.DsxError, match="no program ran successfully in 2"):
        dsx.ProgramOfThought("question -> answer", max_iters=2, sandbox=failing)(question="q")


def test_code_act_steps_timeouts_bad_submit_and_max_iters():
    sandbox = fake(
        fake_result(stdout="5\n"),
        fake_result(timed_out=True, error="TimeoutError: execution timed out"),
        fake_result(final={"answer": "not a number"}),
        fake_result(final={"answer": 50}),
    )
    lm = DummyLM([{"reasoning": f"s{i}", "code": f"step{i}"} for i in range(4)])
    with dsx.context(lm=lm):
        pred = dsx.CodeAct("question -> answer: int", sandbox=sandbox)(question="q")
    assert pred.answer == 50
    obs = [s["observation"] for s in pred.trajectory]
    assert obs[0] == "stdout:\n5" and "timed out" in obs[1] and "SUBMIT needs answer" in obs[2]
    assert len(sandbox.sessions) == 1  # one session for the whole task
    stuck = fake(*[fake_result(stdout="thinking")] * 2)
    lm2 = DummyLM([{"reasoning": "r", "code": "pass"}] * 2 + [{"reasoning": "r", "answer": 1}])
    with dsx.context(lm=lm2):
        assert (
            dsx.CodeAct("question -> answer: int", max_iters=2, sandbox=stuck)(question="q").answer
            == 1
        )


@pytest.mark.sandbox
def test_code_act_in_real_wasmtime_with_state_tools_and_a_timeout():
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    lm = DummyLM(
        [
            {"reasoning": "use the tool", "code": "x = add(2, 3)\nprint(x)"},
            {"reasoning": "spin", "code": "while True:\n    pass"},
            {
                "reasoning": "state was reset",
                "code": "x = add(2, 3)\ntry:\n    add('a', None)\nexcept Exception as e:\n    print('caught', type(e).__name__)",
            },
            {"reasoning": "x persists", "code": "SUBMIT(answer=x * 10)"},
        ]
    )
    agent = dsx.CodeAct("question -> answer: int", tools=[add], timeout=1.0)
    with dsx.context(lm=lm):
        pred = agent(question="(2+3)*10?")
    assert pred.answer == 50
    steps = pred.trajectory
    assert steps[0]["observation"] == "stdout:\n5" and steps[0]["tool_calls"] == ["add"]
    assert (
        "timed out" in steps[1]["observation"]
        and "interpreter was restarted" in steps[1]["observation"]
    )
    assert (
        "caught TypeError" in steps[2]["observation"]
    )  # a tool's exception is catchable in the guest
    assert len(steps) == 4


@pytest.mark.sandbox
def test_program_of_thought_in_real_wasmtime_and_the_math_example():
    lm = DummyLM([{"reasoning": "r", "code": "import math\nSUBMIT(answer=math.factorial(5))"}])
    with dsx.context(lm=lm):
        assert dsx.ProgramOfThought("question -> answer: int")(question="5!?").answer == 120
    lm2 = DummyLM(
        [{"reasoning": "compute", "code": "left = calculator('3 * 12 - 5')\nSUBMIT(answer=left)"}]
    )
    with dsx.context(lm=lm2):
        pred = dsx.load_program(EXAMPLES / "math_solver.dsx")(
            problem="Ann has 3 boxes of 12 apples and eats 5."
        )
    assert pred.answer == 31.0
