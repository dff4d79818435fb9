"""FallbackLM against two real OpenAI-compatible servers: one answering 503, one answering."""

from __future__ import annotations

import asyncio

import pytest

import dsx
from dsx.errors import AuthenticationError, LMError
from dsx.runtime.fallback import AllLMsFailedError, FallbackLM
from dsx.testing import OpenAIServer
from dsx.testing.server import Fault

pytestmark = pytest.mark.integration

REPLY = "<<< answer >>>\nParis\n\n<<< end >>>"


def _lm(server: OpenAIServer, model: str = "openai/m", **kw) -> dsx.LM:
    return dsx.LM(model, api_base=server.api_base, api_key="x", cache=False, num_retries=0, **kw)


def test_falls_over_on_503_to_the_next_lm():
    with (
        OpenAIServer(lambda r: "down", faults=[Fault.status(503)] * 5) as down,
        OpenAIServer(lambda r: REPLY) as up,
    ):
        lm = FallbackLM([_lm(down, "openai/first"), _lm(up, "openai/second")])
        qa = dsx.Predict("question -> answer", lm=lm)
        assert qa(question="Capital of France?").answer == "Paris"
        assert len(down.requests) == 1 and len(up.requests) == 1
        assert lm.history[-1]["model"] in ("openai/second", "second")


def test_async_falls_over_too():
    with (
        OpenAIServer(lambda r: "down", faults=[Fault.status(503)] * 5) as down,
        OpenAIServer(lambda r: REPLY) as up,
    ):
        lm = FallbackLM([_lm(down), _lm(up)])
        qa = dsx.Predict("question -> answer", lm=lm)
        result = asyncio.run(qa.acall(question="Capital of France?"))
        assert result.answer == "Paris"
        assert len(down.requests) == 1 and len(up.requests) == 1


def test_first_lm_answering_means_the_second_is_never_asked():
    with OpenAIServer(lambda r: REPLY) as first, OpenAIServer(lambda r: REPLY) as second:
        lm = FallbackLM([_lm(first), _lm(second)])
        assert dsx.Predict("question -> answer", lm=lm)(question="q").answer == "Paris"
        assert len(first.requests) == 1 and not second.requests


def test_every_lm_failing_names_each_failure_and_retries_the_chain():
    with (
        OpenAIServer(lambda r: "x", faults=[Fault.status(503)] * 10) as a,
        OpenAIServer(lambda r: "x", faults=[Fault.status(502)] * 10) as b,
    ):
        lm = FallbackLM([_lm(a, "openai/a"), _lm(b, "openai/b")], retries=1)
        with pytest.raises(AllLMsFailedError) as info:
            lm("hello")
        err = info.value
        assert isinstance(err, LMError) and err.retryable
        assert [m for m, _ in err.failures] == ["openai/a", "openai/b"] * 2
        assert "openai/a" in str(err) and "openai/b" in str(err) and "2 rounds" in str(err)
        assert len(a.requests) == 2 and len(b.requests) == 2


def test_a_non_retryable_error_is_raised_at_once():
    with (
        OpenAIServer(lambda r: "x", faults=[Fault.status(401)] * 3) as bad,
        OpenAIServer(lambda r: REPLY) as up,
    ):
        lm = FallbackLM([_lm(bad), _lm(up)])
        with pytest.raises(AuthenticationError):
            lm("hello")
        assert not up.requests


def test_request_settings_reach_the_member_and_usage_is_counted_once():
    with OpenAIServer(lambda r: REPLY) as up:
        member = _lm(up, temperature=0.5)
        lm = FallbackLM([member])
        with dsx.track_usage() as usage:
            lm("hello", max_tokens=7)
        body = up.requests[0].body
        assert body["temperature"] == 0.5 and body["max_tokens"] == 7
        # one request, one record: the chain records it, the member does not again
        assert len(lm.history) == 1 and not member.history
        per_model = usage.get_total_tokens()
        assert len(per_model) == 1 and usage.total_tokens > 0


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="at least one LM"):
        FallbackLM([])
    with pytest.raises(TypeError, match=r"lms\[0\] is str"):
        FallbackLM(["openai/x"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="retries"):
        FallbackLM([dsx.LM("openai/x")], retries=-1)


def test_state_carries_only_the_chain_name():
    chain = FallbackLM([dsx.LM("openai/a", api_base="http://10.0.0.1/v1", api_key="secret")])
    state = chain.dump_state()
    assert state == {"model": "fallback(openai/a)", "model_type": "chat"}
    copy = chain.copy(temperature=0.2, model="other")
    assert isinstance(copy, FallbackLM) and copy.model == chain.model
    assert copy.lms[0].kwargs["temperature"] == 0.2
    assert copy.lms[0].api_base == "http://10.0.0.1/v1"  # kept from the program, not state
