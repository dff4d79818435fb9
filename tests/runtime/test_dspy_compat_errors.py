"""Errors with DSPy's shape (issue 21, item 3): codes, provider metadata, construction
without a message, the retry classifier, the parse error's DSPy arguments, and the
formatter agents use to show an exception to the LM."""

from __future__ import annotations

import pickle

import pytest

import dsx
from dsx.errors import (
    AdapterParseError,
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    DsxError,
    LMConnectionError,
    LMError,
    LMResponseError,
    LMTimeoutError,
    LMUnexpectedError,
    ModelNotFoundError,
    RateLimitError,
    ReplyCutOffError,
    ServerError,
    format_error_for_lm,
    is_retryable_lm_error,
)
from dsx.testing import DummyLM

# DSPy's error codes for the same failures.
CODES = {
    LMError: "lm_error",
    RateLimitError: "rate_limit",
    LMTimeoutError: "timeout",
    ServerError: "server",
    LMConnectionError: "transport",
    AuthenticationError: "auth",
    BadRequestError: "invalid_request",
    ContextWindowExceededError: "context_window_exceeded",
    ModelNotFoundError: "unsupported_model",
    LMUnexpectedError: "unexpected",
}


@pytest.mark.parametrize(("cls", "code"), CODES.items())
def test_every_lm_error_builds_without_a_message_and_has_dspy_s_code(cls, code):
    error = cls()
    assert error.code == code
    assert str(error)  # a readable default, not an empty string
    assert isinstance(error, LMError) and isinstance(error, DsxError)
    named = cls(model="openai/gpt-4o-mini")
    assert str(named).startswith("openai/gpt-4o-mini: ")


def test_provider_metadata_is_kept_and_survives_pickling():
    error = RateLimitError(
        "slow down",
        model="openai/gpt-4o",
        provider="openai",
        provider_code="rate_limit_exceeded",
        status=429,
        request_id="req_123",
        retry_after=2.5,
    )
    assert (error.status, error.status_code, error.provider, error.request_id) == (
        429,
        429,
        "openai",
        "req_123",
    )
    assert error.message == str(error) == "slow down"
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is RateLimitError
    assert (back.code, back.status, back.provider, back.provider_code, back.request_id) == (
        "rate_limit",
        429,
        "openai",
        "rate_limit_exceeded",
        "req_123",
    )
    assert back.retry_after == 2.5 and back.retryable


def test_a_code_can_be_given_and_status_code_still_works():
    error = ServerError("boom", code="overloaded", status_code=529)
    assert error.code == "overloaded" and error.status == 529


def test_reply_cut_off_keeps_its_own_fields_through_pickling():
    error = ReplyCutOffError("cut", finish_reason="content_filter", lm_text="par", model="m")
    back = pickle.loads(pickle.dumps(error))
    assert (back.finish_reason, back.lm_text, back.code, back.retryable) == (
        "content_filter",
        "par",
        "reply_cut_off",
        False,
    )


def test_context_window_error_takes_dspy_s_keyword_form():
    error = ContextWindowExceededError(model="m", message="Context window exceeded")
    assert str(error) == "Context window exceeded" and error.model == "m"


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (RateLimitError(), True),
        (LMTimeoutError(), True),
        (ServerError(), True),
        (LMConnectionError(), True),
        (LMResponseError(), True),
        (ReplyCutOffError(), False),
        (AuthenticationError(), False),
        (BadRequestError(), False),
        (ContextWindowExceededError(), False),
        (LMUnexpectedError(), False),
        (ServerError(retryable=False), False),
        (ValueError("not an LM error"), False),
        (TimeoutError(), False),
    ],
)
def test_is_retryable_lm_error(error, retryable):
    assert is_retryable_lm_error(error) is retryable


def test_unexpected_error_keeps_its_cause():
    try:
        try:
            raise KeyError("choices")
        except KeyError as inner:
            raise LMUnexpectedError("the LM subclass failed", model="m") from inner
    except LMUnexpectedError as exc:
        assert isinstance(exc.__cause__, KeyError)
        assert not exc.retryable


def test_adapter_parse_error_takes_dspy_s_arguments():
    sig = dsx.Signature("question -> answer, confidence: float")
    error = AdapterParseError(
        adapter_name="ChatAdapter",
        signature=sig,
        lm_response="no markers here",
        message="the marker is missing",
        parsed_result={"answer": "x"},
    )
    assert error.adapter_name == error.adapter == "ChatAdapter"
    assert error.lm_response == error.lm_text == "no markers here"
    assert error.signature is sig and error.parsed_result == {"answer": "x"}
    assert error.code == "adapter_parse_error"
    text = str(error)
    assert "the marker is missing" in text and "`answer`, `confidence`" in text
    assert "parsed so far: `answer`" in text and "no markers here" in text
    assert isinstance(error, ValueError)
    positional = AdapterParseError("JSONAdapter", sig, "{}")
    assert positional.adapter == "JSONAdapter" and positional.lm_text == "{}"
    back = pickle.loads(pickle.dumps(error))
    assert back.lm_response == "no markers here" and back.reason == "the marker is missing"


def test_parse_errors_raised_by_the_adapters_carry_the_signature():
    sig = dsx.Signature("question -> answer: int")
    lm = DummyLM(["<<< answer >>>\nmany\n<<< end >>>"])
    adapter = dsx.ChatAdapter(use_json_adapter_fallback=False)
    with dsx.context(lm=lm, adapter=adapter), pytest.raises(AdapterParseError) as info:
        dsx.Predict(sig)(question="q")
    assert info.value.signature is not None
    assert list(info.value.signature.output_fields) == ["answer"]
    assert info.value.adapter_name == "ChatAdapter" and "many" in info.value.lm_response


def _raise_in_helper():
    raise ValueError("bad input: 3")


def test_format_error_for_lm():
    try:
        _raise_in_helper()
    except ValueError as exc:
        assert format_error_for_lm(exc) == "bad input: 3"
        with_trace = format_error_for_lm(exc, traceback_frames=3)
    assert with_trace.startswith("\nTraceback (most recent call last):")
    assert "_raise_in_helper" in with_trace and with_trace.endswith("ValueError: bad input: 3")
    assert format_error_for_lm(KeyError()) == "KeyError"  # never an empty message


def test_the_helpers_are_public():
    assert dsx.is_retryable_lm_error is is_retryable_lm_error
    assert dsx.format_error_for_lm is format_error_for_lm
    assert dsx.LMUnexpectedError is LMUnexpectedError


@pytest.mark.parametrize("kind", ["BestOfN", "Refine"])
def test_best_of_n_and_refine_re_raise_the_module_s_own_exception(kind):
    class Flaky(dsx.Module):
        def forward(self, q):
            raise KeyError("no such page")

    module = getattr(dsx, kind)(Flaky(), N=2, reward_fn=lambda i, p: 1.0, threshold=1.0)
    with pytest.raises(KeyError, match="no such page") as info:
        module(q="x")  # every attempt failed (fail_count defaults to N)
    assert f"{kind}: 2 attempt(s) failed" in info.value.__notes__[-1]
    lenient = getattr(dsx, kind)(
        Flaky(), N=2, reward_fn=lambda i, p: 1.0, threshold=1.0, fail_count=5
    )
    with pytest.raises(KeyError) as info:
        lenient(q="x")
    assert f"{kind}: every attempt failed" in info.value.__notes__[-1]


def test_react_shows_tool_failures_with_format_error_for_lm():
    def lookup(key: str) -> str:
        """Look a key up."""
        raise KeyError()  # no message: the observation still says what happened

    step = {"next_thought": "t", "next_tool_name": "lookup", "next_tool_args": {"key": "k"}}
    finish = {"next_thought": "t", "next_tool_name": "finish", "next_tool_args": {}}
    lm = DummyLM([step, finish, {"reasoning": "r", "answer": "a"}])
    with dsx.context(lm=lm):
        pred = dsx.ReAct("question -> answer", tools=[lookup])(question="q")
    assert pred.trajectory[0]["observation"] == "Error: lookup raised KeyError: KeyError"


@pytest.mark.parametrize("transport", ["openai", "litellm"])
def test_dsx_lm_fills_provider_fields_from_a_real_server(transport):
    from dsx.testing.server import Fault, OpenAIServer

    with OpenAIServer(faults=[Fault.rate_limit(retry_after=0.01)]) as srv:
        lm = dsx.LM(
            "openai/dsx-test",
            api_base=srv.api_base,
            api_key="k",
            num_retries=0,
            cache=False,
            transport=transport,
        )
        with pytest.raises(RateLimitError) as info:
            lm("hi")
    error = info.value
    assert (error.code, error.status, error.provider) == ("rate_limit", 429, "openai")
    assert error.provider_code == "rate_limit_exceeded"
    assert dsx.is_retryable_lm_error(error)


def test_the_provider_s_request_id_is_kept():
    from dsx.runtime._openai_transport import ProviderHTTPError
    from dsx.runtime.lm import map_error

    failure = ProviderHTTPError(
        503, {"error": {"message": "overloaded"}}, "", {"X-Request-Id": "req_42"}
    )
    error = map_error(failure, "anthropic/claude-x")
    assert isinstance(error, ServerError)
    assert (error.request_id, error.provider, error.status) == ("req_42", "anthropic", 503)
