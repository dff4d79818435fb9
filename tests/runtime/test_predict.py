from __future__ import annotations

import asyncio

import pytest

import dsx
from dsx import MissingInputError, UnknownInputError
from dsx.testing import DummyLM, FunctionLM


class QA(dsx.Signature):
    """Answer the question."""

    question: str = dsx.InputField()
    answer: str = dsx.OutputField()


def test_predict_returns_parsed_outputs_with_usage():
    lm = DummyLM([{"answer": "Paris"}])
    pred = dsx.Predict(QA, lm=lm)(question="Capital of France?")
    assert pred.answer == "Paris"
    usage = pred.get_lm_usage()["dummy"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    sent = lm.history[-1]["messages"]
    assert sent[0]["role"] == "system" and "Answer the question." in sent[0]["content"]
    assert "Capital of France?" in sent[-1]["content"]


def test_missing_unknown_and_positional_inputs_are_clear_errors():
    predict = dsx.Predict("context, question -> answer", lm=DummyLM([]))
    with pytest.raises(
        MissingInputError, match="missing the input `context`; call it with context=..."
    ):
        predict(question="q")
    with pytest.raises(UnknownInputError, match="no input `questoin`. Did you mean `question`"):
        predict(context="c", questoin="q")
    with pytest.raises(TypeError, match="keyword inputs only"):
        predict("q")


def test_optional_inputs_may_be_omitted():
    lm = DummyLM([{"answer": "ok"}])
    predict = dsx.Predict("hint: Optional[str], question -> answer", lm=lm)
    assert predict(question="q").answer == "ok"
    assert "None" in lm.history[-1]["messages"][-1]["content"]


def test_no_lm_configured_says_how_to_fix():
    with pytest.raises(dsx.DsxError, match=r"dsx.configure\(lm="):
        dsx.Predict(QA)(question="q")


def test_lm_resolution_order_call_then_predictor_then_context_then_default():
    default, ctx, own, per_call = (
        DummyLM([{"answer": n}] * 3, model=n) for n in ("d", "c", "o", "p")
    )
    dsx.configure(lm=default)
    predict = dsx.Predict(QA)
    assert predict(question="q").answer == "d"
    with dsx.context(lm=ctx):
        assert predict(question="q").answer == "c"
        predict.lm = own
        assert predict(question="q").answer == "o"
        assert predict(question="q", lm=per_call).answer == "p"


def test_config_is_sent_to_the_lm_and_per_call_config_overrides():
    seen = []

    def reply(messages, **kwargs):
        seen.append(kwargs)
        return {"answer": "a"}

    predict = dsx.Predict(QA, lm=FunctionLM(reply), temperature=0.3)
    predict(question="q")
    predict(question="q", config={"temperature": 0.9, "max_tokens": 5})
    assert seen[0]["temperature"] == 0.3
    assert seen[1]["temperature"] == 0.9 and seen[1]["max_tokens"] == 5


def test_n_greater_than_one_gives_completions():
    lm = DummyLM([{"answer": "a"}, {"answer": "b"}, {"answer": "c"}])
    pred = dsx.Predict(QA, lm=lm, n=3)(question="q")
    assert pred.answer == "a"
    assert pred.completions.answer == ["a", "b", "c"]


def test_n_completions_drop_unparseable_ones():
    lm = DummyLM([{"answer": "a"}, "garbage", {"answer": "c"}])
    pred = dsx.Predict(QA, lm=lm, n=3, config={})(question="q", config={"n": 3})
    assert pred.completions.answer == ["a", "c"]


def test_demos_become_turns_and_per_call_demos_override():
    lm = DummyLM([{"answer": "x"}] * 2)
    predict = dsx.Predict(QA, lm=lm)
    predict.demos = [dsx.Example(question="1+1?", answer="2")]
    predict(question="q")
    msgs = lm.history[-1]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert "1+1?" in msgs[1]["content"] and "2" in msgs[2]["content"]
    predict(question="q", demos=[])
    assert len(lm.history[-1]["messages"]) == 2


def test_chain_of_thought_adds_reasoning_before_outputs():
    lm = DummyLM([{"reasoning": "Paris is the capital.", "answer": "Paris"}])
    cot = dsx.ChainOfThought(QA, lm=None)
    cot.set_lm(lm)
    pred = cot(question="Capital?")
    assert pred.reasoning == "Paris is the capital." and pred.answer == "Paris"
    assert list(cot.predict.signature.output_fields) == ["reasoning", "answer"]
    system = lm.history[-1]["messages"][0]["content"]
    assert system.index("<<< reasoning >>>") < system.index("<<< answer >>>")


def test_trace_records_predictor_inputs_and_prediction():
    lm = DummyLM([{"answer": "a"}])
    predict = dsx.Predict(QA, lm=lm)
    trace: list = []
    with dsx.context(trace=trace):
        pred = predict(question="q")
    assert trace == [(predict, {"question": "q"}, pred)]


def test_render_shows_messages_without_calling_the_lm():
    lm = DummyLM([])
    predict = dsx.Predict(QA, lm=lm)
    messages = predict.render(question="Why?")
    assert messages[-1]["role"] == "user" and "Why?" in messages[-1]["content"]
    assert lm.calls == 0
    assert dsx.Predict(QA).render(question="no lm needed")[0]["role"] == "system"


async def test_async_predict_and_concurrent_tasks_keep_their_own_context():
    lm_a = FunctionLM(lambda m: {"answer": "A"}, model="a")
    lm_b = FunctionLM(lambda m: {"answer": "B"}, model="b")
    predict = dsx.Predict(QA)

    async def run(lm):
        with dsx.context(lm=lm):
            await asyncio.sleep(0)
            return (await predict.acall(question="q")).answer

    results = await asyncio.gather(*(run(lm_a if i % 2 else lm_b) for i in range(20)))
    assert results == ["A" if i % 2 else "B" for i in range(20)]


async def test_async_function_lm():
    async def reply(messages):
        await asyncio.sleep(0)
        return {"answer": "async"}

    pred = await dsx.Predict(QA, lm=FunctionLM(reply)).acall(question="q")
    assert pred.answer == "async"
