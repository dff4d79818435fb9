"""Replies the model did not finish are errors, never silently truncated values (issue 14)."""

from __future__ import annotations

import pytest

import dsx
from dsx.errors import AdapterParseError, ReplyCutOffError
from dsx.testing import OpenAIServer, Reply

pytestmark = pytest.mark.integration

CUT = "<<< answer >>>\nThe capital of France is Par"


def _lm(server: OpenAIServer, **kwargs) -> dsx.LM:
    return dsx.LM(
        "openai/test", api_base=server.api_base, api_key="x", cache=False, num_retries=0, **kwargs
    )


@pytest.mark.parametrize("stream", [False, True])
def test_a_length_cut_reply_is_an_error_naming_finish_reason(stream):
    with OpenAIServer(script=[Reply(CUT, finish_reason="length")] * 3) as server:
        predict = dsx.Predict("question -> answer")
        lm = _lm(server, stream=stream) if stream else _lm(server)
        with dsx.context(lm=lm), pytest.raises(ReplyCutOffError) as info:
            predict(question="capital of France?")
        assert info.value.finish_reason == "length"
        assert "finish_reason='length'" in str(info.value) and "max_tokens" in str(info.value)
        assert "--lm-option max_tokens=N" in str(info.value)  # how to raise it from dsx run/eval
        assert info.value.lm_text.endswith("is Par")
        # One request: neither retried nor sent again through the JSON fallback.
        assert server.request_count == 1


async def test_a_content_filter_stop_is_reported_as_such_async():
    with OpenAIServer(script=[Reply("", finish_reason="content_filter")] * 3) as server:
        predict = dsx.Predict("question -> answer")
        with dsx.context(lm=_lm(server)), pytest.raises(ReplyCutOffError) as info:
            await predict.acall(question="something")
        assert info.value.finish_reason == "content_filter"
        assert "content filter" in str(info.value)
        assert server.request_count == 1


def test_with_several_choices_finished_ones_are_kept():
    from dsx.runtime.lm_base import LMResponse

    done = "<<< answer >>>\nParis\n\n<<< end >>>"
    sig = dsx.Signature("question -> answer")
    both = LMResponse(outputs=[CUT, done], finish_reasons=["length", "stop"], model="m")
    assert dsx.ChatAdapter().parse_all(sig, both) == [{"answer": "Paris"}]
    cut = LMResponse(outputs=[CUT, CUT], finish_reasons=["length", "length"], model="m")
    with pytest.raises(ReplyCutOffError):
        dsx.ChatAdapter().parse_all(sig, cut)


def test_a_cached_cut_reply_stays_an_error(tmp_path):
    with OpenAIServer(script=[Reply(CUT, finish_reason="length")]) as server:
        lm = dsx.LM("openai/test", api_base=server.api_base, api_key="x", num_retries=0)
        predict = dsx.Predict("question -> answer")
        with dsx.context(lm=lm):
            for _ in range(2):  # the second answer comes from the cache
                with pytest.raises(ReplyCutOffError):
                    predict(question="capital of France, cached?")
        assert server.request_count == 1


def test_deeply_nested_json_is_a_parse_error_with_the_raw_text():
    nested = "[" * 50_000 + "]" * 50_000
    with OpenAIServer(script=['{"answer": ' + nested + "}"]) as server:
        predict = dsx.Predict("question -> answer: list[str]")
        with (
            dsx.context(lm=_lm(server), adapter=dsx.JSONAdapter()),
            pytest.raises(AdapterParseError) as info,
        ):
            predict(question="q")
        assert info.value.lm_text.startswith('{"answer": [[[')
