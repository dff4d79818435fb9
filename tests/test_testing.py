from __future__ import annotations

import pytest

import dsx
from dsx.errors import RealLMCallForbidden
from dsx.runtime.lm_base import BaseLM, LMResponse
from dsx.testing import DummyLM, FunctionLM, forbid_real_lm_requests


def test_dummy_lm_list_in_order_then_runs_out():
    lm = DummyLM([{"answer": "1"}, {"answer": "2"}])
    predict = dsx.Predict("question -> answer", lm=lm)
    assert [predict(question="q").answer for _ in range(2)] == ["1", "2"]
    with pytest.raises(dsx.DsxError, match="ran out of answers"):
        predict(question="q")


def test_dummy_lm_keyed_by_prompt_substring():
    lm = DummyLM({"France": {"answer": "Paris"}, "Italy": {"answer": "Rome"}})
    predict = dsx.Predict("question -> answer", lm=lm)
    assert predict(question="Capital of Italy?").answer == "Rome"
    assert predict(question="Capital of France?").answer == "Paris"
    with pytest.raises(dsx.DsxError, match="no answer for this prompt"):
        predict(question="Spain?")


def test_dummy_lm_follows_matching_demo():
    lm = DummyLM([{"answer": "fallback"}], follow_examples=True)
    predict = dsx.Predict("question -> answer", lm=lm)
    predict.demos = [
        dsx.Example(question="2+2?", answer="4"),
        dsx.Example(question="3+3?", answer="6"),
    ]
    assert predict(question="3+3?").answer == "6"
    assert predict(question="unseen").answer == "fallback"


def test_dummy_lm_answers_json_for_json_adapter():
    lm = DummyLM([{"answer": [1, 2]}])
    with dsx.context(adapter=dsx.JSONAdapter()):
        assert dsx.Predict("q -> answer: list[int]", lm=lm)(q="x").answer == [1, 2]
    assert lm.history[-1]["outputs"] == ['{"answer": [1, 2]}']


def test_function_lm_gets_messages_and_kwargs():
    calls = []

    def reply(messages, **kwargs):
        calls.append((messages, kwargs))
        return ["<<< answer >>>\nx\n\n<<< end >>>", {"answer": "y"}]

    pred = dsx.Predict("q -> answer", lm=FunctionLM(reply), n=2)(q="hi")
    assert pred.completions.answer == ["x", "y"]
    assert calls[0][1]["n"] == 2 and "hi" in calls[0][0][-1]["content"]


class FakeProviderLM(BaseLM):
    is_real = True

    def __init__(self, api_base=None):
        super().__init__("openai/gpt-x")
        self.api_base = api_base

    def forward(self, messages, **kwargs):
        self.check_allowed(self.api_base)
        return LMResponse(outputs=["<<< answer >>>\nreal\n\n<<< end >>>"])


def test_real_lm_requests_fail_loudly_while_forbidden():
    # conftest turns the switch on for the whole suite.
    with pytest.raises(RealLMCallForbidden, match="openai/gpt-x.*forbidden"):
        dsx.Predict("q -> answer", lm=FakeProviderLM())(q="x")
    local = FakeProviderLM(api_base="http://127.0.0.1:8000/v1")
    assert dsx.Predict("q -> answer", lm=local)(q="x").answer == "real"
    with forbid_real_lm_requests(False):
        assert dsx.Predict("q -> answer", lm=FakeProviderLM())(q="x").answer == "real"
    with pytest.raises(RealLMCallForbidden):
        FakeProviderLM()(prompt="hi")


def test_inspect_history_prints_recent_calls(capsys):
    lm = DummyLM([{"answer": "Paris"}])
    dsx.Predict("question -> answer", lm=lm)(question="Capital?")
    text = dsx.inspect_history(1)
    out = capsys.readouterr().out
    assert "Capital?" in out and "Paris" in out and "--- system ---" in out
    assert text in out
    assert "Capital?" in lm.inspect_history(1)


async def test_dummy_lm_out_of_answers_shows_the_parse_error_that_made_the_adapter_retry():
    # The unparsable reply makes the adapter ask again, and the script has nothing left.
    predict = dsx.Predict("question -> answer: int", lm=DummyLM([{"answer": "forty-two"}]))
    with pytest.raises(dsx.DsxError, match="ran out of answers") as info:
        predict(question="q")
    message = str(info.value)
    assert "could not be parsed" in message and "could not parse field `answer`" in message
    assert "forty-two" in message and isinstance(info.value.__cause__, dsx.AdapterParseError)
    predict = dsx.Predict("question -> answer: int", lm=DummyLM([{"answer": "forty-two"}]))
    with pytest.raises(dsx.DsxError, match="ran out of answers(.|\n)*could not parse field"):
        await predict.acall(question="q")


def test_dummy_lm_out_of_answers_without_a_retry_says_only_that():
    predict = dsx.Predict("question -> answer", lm=DummyLM([]))
    with pytest.raises(dsx.DsxError, match="ran out of answers") as info:
        predict(question="q")
    assert "parse" not in str(info.value) and info.value.__cause__ is None


def test_dummy_lm_without_an_answer_for_a_retry_shows_the_parse_error():
    # The key matches the chat prompt only, not the adapter's JSON retry.
    lm = DummyLM({"then <<< end >>>": {"answer": "forty-two"}})
    predict = dsx.Predict("question -> answer: int", lm=lm)
    with pytest.raises(dsx.DsxError, match="no answer for this prompt") as info:
        predict(question="q")
    assert "could not parse field `answer`" in str(info.value)
