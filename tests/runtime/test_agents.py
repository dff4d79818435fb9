"""Agents and self-correction with scripted LMs: Tool, ReAct, BestOfN, Refine, Assert/Suggest."""

from __future__ import annotations

import asyncio
import logging

import pytest

import dsx
from dsx.errors import ContextWindowExceededError
from dsx.testing import DummyLM, FunctionLM


def search(query: str, k: int = 2) -> list[str]:
    """Search the corpus.

    Args:
        query: what to look for
        k: how many passages
    """
    if query == "boom":
        raise RuntimeError("network down")
    return [f"passage about {query}"][:k]


async def async_add(a: int, b: int) -> int:
    """Add two numbers."""
    await asyncio.sleep(0)
    return a + b


def step(tool, args, thought="t"):
    return {"next_thought": thought, "next_tool_name": tool, "next_tool_args": args}


def test_tool_schema_from_hints_and_docstring_and_validation():
    tool = dsx.Tool(search)
    assert tool.name == "search" and tool.desc == "Search the corpus."
    schema = tool.json_schema()["parameters"]
    assert schema["required"] == ["query"]
    assert schema["properties"]["query"]["description"] == "what to look for"
    assert schema["properties"]["k"]["type"] == "integer"
    assert tool(query="x") == ["passage about x"]
    with pytest.raises(dsx.DsxError, match="invalid arguments for search: k"):
        tool(query="x", k="many")
    with pytest.raises(dsx.DsxError, match="has no argument 'q'"):
        tool(q="x")
    assert asyncio.run(dsx.Tool(async_add).acall(a=1, b="2")) == 3
    assert dsx.Tool(async_add)(a=2, b=2) == 4


def test_react_tool_errors_and_invalid_arguments_become_observations():
    lm = DummyLM(
        [
            step("search", {"query": "France"}),
            step("search", {"k": "many"}),
            step("search", {"query": "boom"}),
            step("nope", {}),
            step("finish", {}),
            {"reasoning": "found it", "answer": "Paris"},
        ]
    )
    agent = dsx.ReAct("question -> answer", tools=[search])
    with dsx.context(lm=lm):
        pred = agent(question="capital of France?")
    assert pred.answer == "Paris" and pred.reasoning == "found it"
    obs = [s["observation"] for s in pred.trajectory]
    assert obs[0] == '["passage about France"]'
    assert (
        obs[1].startswith("Error: invalid arguments for search")
        and "query: Field required" in obs[1]
    )
    assert obs[2] == "Error: search raised RuntimeError: network down"
    assert "no tool 'nope'" in obs[3] and obs[4] == "Completed."
    # the trajectory is shown to the LM on later steps
    assert (
        "observation: Error: search raised RuntimeError" in lm.history[4]["messages"][-1]["content"]
    )


def test_react_stops_at_max_iters_then_extracts():
    lm = DummyLM(
        [step("search", {"query": str(i)}) for i in range(3)]
        + [{"reasoning": "r", "answer": "best guess"}]
    )
    agent = dsx.ReAct("question -> answer", tools=[search], max_iters=3)
    with dsx.context(lm=lm):
        pred = agent(question="q")
    assert len(pred.trajectory) == 3 and pred.answer == "best guess"
    assert lm.calls == 4


def test_react_finish_can_carry_the_outputs_and_skip_extraction():
    lm = DummyLM([step("finish", {"answer": "42"})])
    agent = dsx.ReAct("question -> answer: int", tools=[search], extract_from_finish=True)
    with dsx.context(lm=lm):
        pred = agent(question="q")
    assert pred.answer == 42 and lm.calls == 1


def test_react_trims_the_oldest_steps_on_context_overflow():
    calls = {"n": 0}

    def reply(messages):
        calls["n"] += 1
        content = messages[-1]["content"]
        if "Step 3" in content:
            raise ContextWindowExceededError("too long", model="m", status_code=400)
        if "<<< next_thought >>>" in messages[0]["content"]:
            return step("search", {"query": "x"}) if calls["n"] < 5 else step("finish", {})
        return {"reasoning": "r", "answer": "done"}

    agent = dsx.ReAct("question -> answer", tools=[search], max_iters=6)
    with dsx.context(lm=FunctionLM(reply)):
        pred = agent(question="q")
    assert pred.answer == "done"
    assert len(pred.trajectory) <= 3


async def test_concurrent_agents_do_not_share_state():
    def make_lm(tag):
        return DummyLM(
            [step("search", {"query": tag}), step("finish", {}), {"reasoning": tag, "answer": tag}]
        )

    agent = dsx.ReAct("question -> answer", tools=[search])

    async def run(tag):
        with dsx.context(lm=make_lm(tag)):
            return await agent.acall(question=tag)

    preds = await asyncio.gather(*(run(f"t{i}") for i in range(8)))
    for i, pred in enumerate(preds):
        assert pred.answer == f"t{i}"
        assert pred.trajectory[0]["observation"] == f'["passage about t{i}"]'


class Titler(dsx.Module):
    def __init__(self, kind="assert"):
        self.gen = dsx.Predict("topic -> title")
        self.kind = kind

    def forward(self, topic):
        title = self.gen(topic=topic).title
        check = dsx.Assert if self.kind == "assert" else dsx.Suggest
        check(len(title) < 10, "the title must be shorter than 10 characters")
        return dsx.Prediction(title=title)


def test_assert_backtracks_with_previous_output_and_feedback():
    lm = DummyLM([{"title": "A very long title"}, {"title": "Short"}])
    with dsx.context(lm=lm):
        assert Titler()(topic="x").title == "Short"
    retry = lm.history[-1]["messages"][-1]["content"]
    assert "<<< previous_title >>>\nA very long title" in retry
    assert "<<< feedback >>>\nthe title must be shorter than 10 characters" in retry


def test_assert_raises_after_max_backtracks_and_suggest_moves_on(caplog):
    lm = DummyLM([{"title": "A very long title"}] * 10)
    with (
        dsx.context(lm=lm, max_backtracks=2),
        pytest.raises(dsx.AssertionFailed, match="shorter than 10"),
    ):
        Titler()(topic="x")
    assert lm.calls == 3
    lm2 = DummyLM([{"title": "A very long title"}] * 10)
    with dsx.context(lm=lm2, max_backtracks=1), caplog.at_level(logging.WARNING, logger="dsx"):
        assert Titler("suggest")(topic="x").title == "A very long title"
    assert lm2.calls == 2 and "suggestion not met" in caplog.text


async def test_backtracking_is_isolated_between_concurrent_programs():
    async def run(i):
        bad = {"title": f"long title number {i}"}
        lm = DummyLM([bad, {"title": f"ok{i}"}] if i % 2 else [{"title": f"ok{i}"}])
        with dsx.context(lm=lm):
            return (await Titler().acall(topic=str(i))).title, lm.calls

    results = await asyncio.gather(*(run(i) for i in range(10)))
    assert results == [(f"ok{i}", 2 if i % 2 else 1) for i in range(10)]


def test_dsx_assert_statement_backtracks_too(tmp_path):
    src = (
        'signature T = "topic -> title"\nmodule M {\n    gen = Predict(T)\n    forward(topic: str) {\n'
        '        t = gen(topic = topic)\n        assert len(t.title) < 10, "shorter please"\n        return t\n    }\n}\n'
        "program m = M()\n"
    )
    (tmp_path / "m.dsx").write_text(src)
    lm = DummyLM([{"title": "A very long title"}, {"title": "Short"}])
    with dsx.context(lm=lm):
        assert dsx.load_program(tmp_path / "m.dsx")(topic="x").title == "Short"
    assert "<<< feedback >>>\nshorter please" in lm.history[-1]["messages"][-1]["content"]


def test_best_of_n_keeps_the_best_and_samples_anew():
    seen = []

    def reply(messages, **kwargs):
        seen.append((kwargs.get("rollout_id"), kwargs.get("temperature")))
        return {"answer": str(len(seen))}

    program = dsx.Predict("question -> answer")
    best = dsx.BestOfN(
        program, N=3, reward_fn=lambda inputs, pred: int(pred.answer) % 3, threshold=5
    )
    with dsx.context(lm=FunctionLM(reply)):
        assert best(question="q").answer == "2"
    assert seen == [(None, None), (1, 1.0), (2, 1.0)]


async def test_refine_gives_feedback_to_the_next_attempt_and_stops_at_threshold():
    prompts = []

    def reply(messages):
        prompts.append(messages[-1]["content"])
        return {"summary": "short" if len(prompts) > 1 else "a very long summary indeed"}

    def reward(inputs, pred):
        ok = len(pred.summary.split()) <= 2
        return (1.0, None) if ok else (0.0, "Use at most two words.")

    refine = dsx.Refine(dsx.ChainOfThought("text -> summary"), N=4, reward_fn=reward, threshold=1.0)
    with dsx.context(lm=FunctionLM(lambda m: {"reasoning": "r", **reply(m)})):
        pred = await refine.acall(text="long text")
    assert pred.summary == "short" and len(prompts) == 2
    assert "<<< hint >>>" in prompts[1] and "Use at most two words." in prompts[1]
    assert "<<< hint >>>" not in prompts[0]


def test_best_of_n_gives_up_after_fail_count():
    def reply(messages):
        raise ValueError("model exploded")

    best = dsx.BestOfN(
        dsx.Predict("q -> a"), N=3, reward_fn=lambda i, p: 1.0, threshold=1.0, fail_count=2
    )
    # The module's own exception after the last allowed failure, as in DSPy.
    with (
        dsx.context(lm=FunctionLM(reply)),
        pytest.raises(ValueError, match="model exploded") as info,
    ):
        best(q="x")
    assert "BestOfN: 2 attempt(s) failed (fail_count=2)" in info.value.__notes__[-1]


def test_example_agent_and_refined_summarizer_run(monkeypatch):
    from pathlib import Path

    examples = Path(__file__).resolve().parents[2] / "examples"
    lm = DummyLM(
        [
            step("calculator", {"expression": "6 * 7"}),
            step("finish", {}),
            {"reasoning": "6*7=42", "answer": "42"},
        ]
    )
    with dsx.context(lm=lm):
        pred = dsx.load_program(examples / "react_agent.dsx")(question="What is 6 times 7?")
    assert pred.answer == "42" and pred.trajectory[0]["observation"] == "42.0"
    long = " ".join(["word"] * 40)
    lm2 = DummyLM(
        [{"reasoning": "r", "summary": long}, {"reasoning": "r", "summary": "A short summary."}]
    )
    with dsx.context(lm=lm2):
        assert (
            dsx.load_program(examples / "refine_summary.dsx")(text="some text").summary
            == "A short summary."
        )
