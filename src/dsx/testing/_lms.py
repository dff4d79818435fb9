"""Scripted LMs for tests: :class:`DummyLM` and :class:`FunctionLM`."""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dsx.errors import AdapterParseError, DsxError
from dsx.runtime.adapters._values import format_output_value, jsonable
from dsx.runtime.adapters.chat import END_MARKER, marker
from dsx.runtime.lm_base import BaseLM, LMResponse, _set_forbid_real_requests

__all__ = ["DummyLM", "FunctionLM", "forbid_real_lm_requests", "format_answer"]

Message = dict[str, Any]
Answer = str | Mapping[str, Any]


def format_answer(answer: Answer, *, json_mode: bool = False) -> str:
    """Render an answer the way the active adapter expects a reply.

    A string is returned verbatim (use it to script malformed replies). A mapping of
    output field values becomes marker sections, or a JSON object in JSON mode.
    """
    if isinstance(answer, str):
        return answer
    if json_mode:
        return json.dumps({k: jsonable(v) for k, v in answer.items()}, ensure_ascii=False)
    parts = [f"{marker(k)}\n{format_output_value(v)}" for k, v in answer.items()]
    parts.append(END_MARKER)
    return "\n\n".join(parts)


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


def _usage(messages: Sequence[Message], outputs: Sequence[str]) -> dict[str, int]:
    prompt = sum(len(_text(m.get("content"))) for m in messages) // 4
    completion = sum(len(o) for o in outputs) // 4
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class DummyLM(BaseLM):
    """An in-process LM that answers from a script.

    Args:
        answers: either a list of answers used in order (one per completion), or a
            dict mapping a substring of the prompt to the answer to give when the last
            user message contains it. Each answer is a dict of output field values (rendered
            in the adapter's reply format) or a raw string (sent verbatim).
        follow_examples: answer with the demo whose inputs match the current request
            (the demo's assistant turn is echoed).

    Example:
        >>> lm = DummyLM([{"answer": "Paris"}])
        >>> dsx.Predict("question -> answer", lm=lm)(question="Capital of France?").answer
        'Paris'
    """

    def __init__(
        self,
        answers: Sequence[Answer] | Mapping[str, Answer] = (),
        *,
        follow_examples: bool = False,
        model: str = "dummy",
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        self.answers = answers
        self.follow_examples = follow_examples
        self._index = 0
        self._lock = threading.Lock()

    def forward(self, messages: list[Message], **kwargs: Any) -> LMResponse:
        n = int(kwargs.get("n") or 1)
        json_mode = "response_format" in kwargs
        outputs = [format_answer(self._next(messages), json_mode=json_mode) for _ in range(n)]
        return LMResponse(outputs=outputs, usage=_usage(messages, outputs), model=self.model)

    def _next(self, messages: list[Message]) -> Answer:
        if self.follow_examples:
            echoed = _matching_demo(messages)
            if echoed is not None:
                return echoed
        if isinstance(self.answers, Mapping):
            prompt = _text(messages[-1].get("content")) if messages else ""
            for key, answer in self.answers.items():
                if key in prompt:
                    return answer
            cause = _parse_error_being_retried()
            raise DsxError(
                f"DummyLM has no answer for this prompt: none of {list(self.answers)!r} occurs "
                f"in the last message:\n{prompt[:500]}{_retry_note(cause)}"
            ) from cause
        with self._lock:
            if self._index >= len(self.answers):
                cause = _parse_error_being_retried()
                raise DsxError(
                    f"DummyLM ran out of answers: it had {len(self.answers)} and was asked for "
                    f"another.{_retry_note(cause) or ' Give it more answers.'}"
                ) from cause
            answer = self.answers[self._index]
            self._index += 1
        return answer


def _parse_error_being_retried() -> AdapterParseError | None:
    """The parse error the adapter is handling by asking again, if that is why we were called.

    Adapters re-ask from inside their ``except AdapterParseError`` block, and a scripted LM
    answers in the same thread and task, so the error is the one being handled right now.
    """
    exc: BaseException | None = sys.exc_info()[1]
    while exc is not None:
        if isinstance(exc, AdapterParseError):
            return exc
        exc = exc.__context__
    return None


def _retry_note(cause: AdapterParseError | None) -> str:
    if cause is None:
        return ""
    return (
        "\nThis request was the adapter asking again because the previous reply could not be "
        f"parsed:\n{cause}\nFix that answer (a dict of output values is rendered in the "
        "adapter's format; a string is sent as is), or script a reply for the retry too."
    )


def _matching_demo(messages: list[Message]) -> str | None:
    if not messages:
        return None
    current = _text(messages[-1].get("content"))
    for i in range(len(messages) - 2, 0, -1):
        msg = messages[i]
        if msg.get("role") == "user" and i + 1 < len(messages) - 1:
            demo_input = _text(msg.get("content"))
            if demo_input and current.startswith(demo_input):
                reply = messages[i + 1]
                if reply.get("role") == "assistant":
                    return _text(reply.get("content"))
    return None


class FunctionLM(BaseLM):
    """An LM whose replies come from a function of the messages.

    The function gets ``(messages, **kwargs)`` (or just ``messages`` if it takes no more)
    and returns a reply: a string, a dict of output values, or a list of those (one per
    completion). It may be ``async``.
    """

    def __init__(self, func: Callable[..., Any], *, model: str = "function", **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.func = func
        self._is_async = inspect.iscoroutinefunction(func)
        params = inspect.signature(func).parameters.values()
        self._takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in params)

    def _invoke(self, messages: list[Message], kwargs: dict[str, Any]) -> Any:
        return self.func(messages, **kwargs) if self._takes_kwargs else self.func(messages)

    def _response(self, messages: list[Message], kwargs: dict[str, Any], result: Any) -> LMResponse:
        json_mode = "response_format" in kwargs
        replies = result if isinstance(result, list) else [result]
        outputs = [format_answer(r, json_mode=json_mode) for r in replies]
        return LMResponse(outputs=outputs, usage=_usage(messages, outputs), model=self.model)

    def forward(self, messages: list[Message], **kwargs: Any) -> LMResponse:
        result = self._invoke(messages, kwargs)
        if self._is_async:
            result = asyncio.run(result)
        return self._response(messages, kwargs, result)

    async def aforward(self, messages: list[Message], **kwargs: Any) -> LMResponse:
        result = self._invoke(messages, kwargs)
        if self._is_async:
            result = await result
        return self._response(messages, kwargs, result)


class forbid_real_lm_requests:
    """Make every request of a real (provider) LM fail loudly.

    Takes effect when called; use it as a context manager to restore the previous
    setting afterwards. Requests to loopback endpoints (``dsx.testing.OpenAIServer``) stay
    allowed. The test suite turns this on for every test.
    """

    def __init__(self, enabled: bool = True) -> None:
        self._previous = _set_forbid_real_requests(enabled)

    def __enter__(self) -> forbid_real_lm_requests:
        return self

    def __exit__(self, *exc: object) -> None:
        _set_forbid_real_requests(self._previous)
