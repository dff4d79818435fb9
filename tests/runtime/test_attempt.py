"""dsx.runtime._attempt: one core, a sync and an async driver, one retry policy; the one
server-sent events parser of the lean transport."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsx.errors import AuthenticationError, LMError, RateLimitError, ServerError
from dsx.runtime import _attempt
from dsx.runtime._attempt import SEND, Backoff, Call, Core, Retry, Sleep, retrying
from dsx.runtime._openai_transport import MalformedResponse, ServerSentEvents
from dsx.runtime.embedder import Embedder
from dsx.runtime.lm import LM


class Policy(Backoff):
    retry_base_delay = 0.001
    retry_max_delay = 0.002


class Doubler:
    """A module-like target: sync call and acall."""

    def __call__(self, x: int) -> int:
        return 2 * x

    async def acall(self, x: int) -> int:
        return 2 * x


def scripted(outcomes: list[Any]) -> tuple[Any, Any, list[Any]]:
    """Sync and async send functions that return (or raise) ``outcomes`` in order."""
    sent: list[Any] = []

    def send(step: Any) -> Any:
        sent.append(step.payload)
        out = outcomes.pop(0)
        if isinstance(out, BaseException):
            raise out
        return out

    async def asend(step: Any) -> Any:
        return send(step)

    return send, asend, sent


def both(make_core: Any, outcomes: list[Any]) -> list[tuple[str, Any, list[Any]]]:
    """Run a fresh core with each driver over the same outcomes: (kind, result, payloads)."""
    results = []
    for kind in ("sync", "async"):
        send, asend, sent = scripted(list(outcomes))
        try:
            if kind == "sync":
                value: Any = _attempt.run_sync(make_core(), send)
            else:
                value = asyncio.run(_attempt.run_async(make_core(), asend))
        except Exception as exc:
            value = exc
        results.append((kind, value, sent))
    return results


def test_both_drivers_perform_send_sleep_and_call_steps_alike() -> None:
    def core() -> Core:
        first = yield SEND
        yield Sleep(0)
        doubled = yield Call(Doubler(), (first,))
        try:
            yield _attempt.Send("second")
        except ValueError as exc:
            return (doubled, str(exc))
        return (doubled, None)

    for kind, value, sent in both(core, [21, ValueError("refused")]):
        assert value == (42, "refused"), kind
        assert sent == [None, "second"], kind


def test_retries_a_retryable_failure_then_returns() -> None:
    def core() -> Core:
        retry = Retry(Policy(), "m", 5.0, num_retries=2)
        return (yield from retrying(retry, {"n": 1}))

    outcomes = [ServerError("boom", model="m"), RateLimitError("slow", model="m"), "ok"]
    for kind, value, sent in both(core, outcomes):
        assert value == "ok", kind
        assert sent == [{"n": 1}] * 3, kind


def test_gives_up_after_the_retries_and_says_so() -> None:
    def core() -> Core:
        return (yield from retrying(Retry(Policy(), "m", 5.0, num_retries=1)))

    for kind, err, sent in both(core, [ServerError("boom", model="m")] * 2):
        assert isinstance(err, ServerError), kind
        assert err.attempts == 2 and "gave up after 2 attempts" in str(err), kind
        assert len(sent) == 2, kind


def test_a_failure_that_is_not_retryable_is_raised_at_once() -> None:
    def core() -> Core:
        return (yield from retrying(Retry(Policy(), "m", 5.0, num_retries=3)))

    for kind, err, sent in both(core, [AuthenticationError("no", model="m"), "never"]):
        assert isinstance(err, AuthenticationError) and err.attempts == 1, kind
        assert "gave up" not in str(err) and len(sent) == 1, kind


def test_an_exception_that_is_no_provider_failure_passes_through_unchanged() -> None:
    bug = KeyError("a bug in the caller")

    def core() -> Core:
        return (yield from retrying(Retry(Policy(), "m", 5.0, num_retries=3)))

    for kind, err, sent in both(core, [bug, "never"]):
        assert err is bug and len(sent) == 1, kind


def test_provider_exceptions_are_mapped_to_lm_errors() -> None:
    class APIConnectionError(Exception):  # named like the openai SDK's
        __module__ = "openai"

    def core() -> Core:
        return (yield from retrying(Retry(Policy(), "openai/x", 5.0, num_retries=0)))

    for kind, err, _ in both(core, [APIConnectionError("reset")]):
        assert isinstance(err, LMError) and err.retryable and err.attempts == 1, kind
        assert isinstance(err.__cause__, APIConnectionError), kind


def sleeps_after(policy: Backoff, err: LMError) -> float:
    """The backoff the core asks for after ``err``."""
    core = retrying(Retry(policy, "m", 5.0, num_retries=1))
    assert next(core) is SEND
    step = core.throw(err)
    assert isinstance(step, Sleep)
    return step.seconds


def test_retry_after_is_honoured_up_to_max_retry_after() -> None:
    class Patient(Policy):
        max_retry_after = 100.0

    assert sleeps_after(Patient(), RateLimitError("slow", model="m", retry_after=90)) == 90
    # Longer than the policy allows: backoff with jitter instead.
    assert sleeps_after(Policy(), RateLimitError("slow", model="m", retry_after=90)) <= 0.002


def test_the_embedder_retries_with_the_lms_policy() -> None:
    """The Embedder once hard-coded 60 s where the LM had max_retry_after."""
    assert Embedder.max_retry_after == LM.max_retry_after
    assert Embedder.retry_base_delay == LM.retry_base_delay
    assert Embedder.retry_max_delay == LM.retry_max_delay

    class Patient(Embedder):
        max_retry_after = 100.0

    embed = Patient(
        "openai/text-embedding-3-small", api_base="http://127.0.0.1:9/v1", num_retries=1
    )
    core = embed._attempts(["hello"], {})
    step = next(core)
    assert isinstance(step, _attempt.Send)
    assert step.payload["input"] == ["hello"] and step.payload["num_retries"] == 0
    sleep = core.throw(RateLimitError("slow", model=embed.model, retry_after=90))
    assert isinstance(sleep, Sleep) and sleep.seconds == 90
    again = core.send(None)
    assert isinstance(again, _attempt.Send) and again.payload == step.payload  # sent again
    with pytest.raises(StopIteration) as done:
        core.send({"data": [{"index": 0, "embedding": [1.0, 2.0]}]})
    assert done.value.value == [[1.0, 2.0]]


# -- server-sent events ---------------------------------------------------------------------


def parse(chunks: list[bytes]) -> tuple[list[dict[str, Any]], bool]:
    """Feed ``chunks`` split into lines the way the HTTP clients deliver them."""
    events = ServerSentEvents()
    out = []
    for line in b"".join(chunks).splitlines(keepends=True):
        event = events.line(line)
        if event is not None:
            out.append(event)
        elif events.done:
            return out, True
    if (event := events.end()) is not None:
        out.append(event)
    return out, events.done


def test_events_comments_multiline_data_and_done() -> None:
    stream = (
        b": keep-alive\r\n\r\n"
        b'data: {"a": 1}\n\n'
        b"event: ignored\n"
        b'data:{"b":\n'
        b"data: 2}\n\n"
        b"data: [DONE]\n\n"
        b'data: {"after": "done"}\n\n'
    )
    assert parse([stream]) == ([{"a": 1}, {"b": 2}], True)


def test_an_unterminated_last_event_is_still_read() -> None:
    assert parse([b'data: {"a": 1}\n\ndata: {"b": 2}']) == ([{"a": 1}, {"b": 2}], False)
    assert parse([b"data: [DONE]"]) == ([], True)


def test_bad_events_are_malformed_responses() -> None:
    with pytest.raises(MalformedResponse, match="not JSON"):
        parse([b"data: {oops\n\n"])
    with pytest.raises(MalformedResponse, match="not a JSON object"):
        parse([b"data: [1, 2]\n\n"])


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=8)), max_size=5),
    crlf=st.booleans(),
    done=st.booleans(),
)
def test_any_events_round_trip(events: list[dict[str, Any]], crlf: bool, done: bool) -> None:
    end = b"\r\n" if crlf else b"\n"
    body = b"".join(b"data: " + json.dumps(e).encode() + end + end for e in events)
    if done:
        body += b"data: [DONE]" + end + end
    assert parse([body]) == (events, done)
