"""``dsx.LM``: the client for real providers, through LiteLLM or a lean HTTP transport.

LiteLLM is imported (by :mod:`dsx.runtime._litellm`, the one module that does) only on the
first request that needs it: importing it costs seconds. Calls to OpenAI-compatible
endpoints go through the lean transport (:mod:`dsx.runtime._openai_transport`) unless
``transport="litellm"``: LiteLLM costs milliseconds of CPU per call. Everything else —
cache, retries, history, usage, streaming, error mapping, structured-output negotiation —
lives here and is the same for both transports.

dsx does its own retrying — exponential backoff with full jitter, honouring
``Retry-After``, in the attempt core :mod:`dsx.runtime._attempt` — so LiteLLM and the
openai SDK are told never to retry. Provider failures are mapped into
:class:`dsx.errors.LMError` subclasses that name the model, quote the provider and say
whether a retry may help. Answers go through the process-wide cache
(:mod:`dsx.runtime.cache`) unless ``cache=False``.

Secrets and endpoints (``api_key``, ``api_base``, headers) live on the LM object only:
they are sent with each request but never enter request parameters, history, cache keys or
:meth:`LM.dump_state`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import itertools
import json
import math
import re
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from dsx.errors import (
    AuthenticationError,
    BadRequestError,
    ContextWindowExceededError,
    LMConnectionError,
    LMError,
    LMResponseError,
    LMTimeoutError,
    ModelNotFoundError,
    RateLimitError,
    ServerError,
)
from dsx.runtime import _litellm, _model_names
from dsx.runtime import _structured_output as _formats
from dsx.runtime import streaming as _streaming
from dsx.runtime._attempt import Backoff, Core, Retry, Send, Sleep, run_async, run_sync
from dsx.runtime._sync_deadline import call_within, iterate_within
from dsx.runtime.cache import Cache, get_cache, request_key
from dsx.runtime.lm_base import BaseLM, LMResponse

__all__ = ["LM"]

Message = dict[str, Any]

#: Kept on the LM, sent to LiteLLM, never recorded anywhere.
_SECRET_KEYS = frozenset({"api_key", "api_base", "base_url", "headers", "extra_headers"})
#: How a request is sent rather than what it asks: never part of the request parameters.
_TRANSPORT_KEYS = _SECRET_KEYS | {
    "timeout",
    "request_timeout",
    "num_retries",
    "max_retries",
    "cache",
    "stream",
    "rollout_id",
    "transport",
}
#: Settings that :meth:`LM.copy` and the constructor keep as attributes, not as kwargs.
_ATTRIBUTES = (
    "model_type",
    "cache",
    "num_retries",
    "timeout",
    "api_base",
    "api_key",
    "headers",
    "transport",
    "finetuned",
)
Transport = Literal["auto", "litellm", "openai"]
_TRANSPORTS = ("auto", "litellm", "openai")

_transport: Any = None  # dsx.runtime._openai_transport, imported on first use
_warned_rollout = False
#: The LiteLLM module, imported on first use (by dsx.runtime._litellm, the only importer).
_lib = _litellm.load


def _lean() -> Any:
    """The lean transport module (imports neither aiohttp nor httpx by itself)."""
    global _transport
    if _transport is None:
        from dsx.runtime import _openai_transport

        _transport = _openai_transport
    return _transport


@dataclass(slots=True)
class _Call:
    """One request, split into what it asks (``params``) and how it is sent."""

    messages: list[Message]
    params: dict[str, Any]
    api_base: str | None
    api_key: str | None
    headers: dict[str, Any] | None
    timeout: Any
    num_retries: int
    use_cache: bool
    stream: bool
    rollout_id: Any
    transport: str = "auto"
    lean: bool | None = None  # decided on first use (see LM._is_lean)
    key: str = ""
    yielded: bool = False  # astream gave text away: a failure can no longer be retried
    #: The structured output asked for, the mode sent, and the modes the endpoint refused.
    format_asked: dict[str, Any] | None = None
    format_mode: _formats.Mode | None = None
    format_rejected: list[str] = field(default_factory=list)


class LM(BaseLM, Backoff):
    """A language model: OpenAI, Anthropic, local servers (vLLM, SGLang, Ollama), ...

    Args:
        model: ``"provider/model"``, e.g. ``"openai/gpt-4o-mini"``. Checked here, without
            a request: an unknown provider raises :class:`~dsx.errors.ModelNotFoundError`
            naming close matches, an empty name :class:`~dsx.errors.BadRequestError`. A
            missing key is reported before the first request.
        model_type: ``"chat"`` (messages) or ``"text"`` (the messages joined into one prompt,
            sent to the completions endpoint).
        temperature: sampling temperature (``None``: the provider's default).
        max_tokens: the most tokens to generate (``None``: the provider's default).
        cache: look answers up in, and store them in, the dsx cache.
        num_retries: retries after a retryable failure (429, 5xx, timeouts, resets,
            malformed or broken-off responses), with exponential backoff and full jitter.
        timeout: seconds one attempt may take, the whole answer included (``None``: 120 s,
            ``dsx.runtime._openai_transport.DEFAULT_TIMEOUT``). A server that keeps sending
            but never finishes is cut there with :class:`~dsx.errors.LMTimeoutError`; see
            ``docs/lm.md`` for the one case (LiteLLM, sync, not streamed) where only each
            wait for data is bounded.
        api_base: the endpoint, e.g. ``"http://127.0.0.1:8000/v1"``.
        api_key: the key (default: the provider's environment variable, e.g. ``OPENAI_API_KEY``).
        transport: how requests are sent. ``"auto"``: OpenAI-compatible endpoints
            (``openai/...`` models) through dsx's lean HTTP client, every other provider
            through LiteLLM; ``"openai"``: always the lean client; ``"litellm"``: always
            LiteLLM. Both behave the same (see ``docs/lm.md``); the lean client costs far
            less CPU per call.
        **kwargs: default request parameters (``n``, ``top_p``, ``stop``, ``rollout_id``,
            ``headers``, ...).

    A ``response_format`` the endpoint refuses (llama.cpp's server takes no
    ``json_schema``) is sent again at once in a weaker form, and the form that worked is
    remembered per model and endpoint (see ``docs/lm.md``, "Structured output").

    Example:
        >>> lm = dsx.LM("openai/gpt-4o-mini", temperature=0.2)
        >>> lm("Say hi")
        ['Hi!']
    """

    is_real = True

    def __init__(
        self,
        model: str,
        *,
        model_type: Literal["chat", "text"] = "chat",
        temperature: float | None = None,
        max_tokens: int | None = None,
        cache: bool = True,
        num_retries: int = 3,
        timeout: float | None = None,
        api_base: str | None = None,
        api_key: str | None = None,
        transport: Transport = "auto",
        **kwargs: Any,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"LM needs a model name like 'openai/gpt-4o-mini', got {model!r}")
        if model_type not in ("chat", "text"):
            raise ValueError(f"model_type must be 'chat' or 'text', got {model_type!r}")
        if num_retries < 0:
            raise ValueError(f"num_retries must be >= 0, got {num_retries}")
        _check_transport(transport)
        _model_names.check_model(model, any_prefix=transport == "openai")
        base_url = kwargs.pop("base_url", None)
        finetuned = kwargs.pop("finetuned", None)
        headers = {
            **(kwargs.pop("extra_headers", None) or {}),
            **(kwargs.pop("headers", None) or {}),
        }
        if temperature is not None:
            kwargs["temperature"] = temperature
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        super().__init__(model, model_type=model_type, **kwargs)
        self.cache = cache
        self.num_retries = num_retries
        self.timeout = timeout
        self.api_base = api_base or base_url
        self.api_key = api_key
        self.headers: dict[str, Any] | None = dict(headers) if headers else None
        self.transport: Transport = transport
        #: Where this fine-tuned model came from (``dsx.runtime.finetune.FinetunedModel``).
        self.finetuned = _finetuned_ref(finetuned)
        # The structured-output mode each (model, endpoint) is known to take: learned in
        # one refused request, shared with copies, never saved (see _choose_format).
        self._format_modes: dict[tuple[str, str | None], _formats.Mode] = {}

    # -- settings -------------------------------------------------------------------------
    def copy(self, **kwargs: Any) -> LM:
        """A new LM with the same settings, overridden by ``kwargs``.

        Request parameters set to ``None`` are removed (``lm.copy(temperature=None)``).
        """
        attrs = {k: kwargs.pop(k) for k in _ATTRIBUTES if k in kwargs}
        if "base_url" in kwargs:
            attrs["api_base"] = kwargs.pop("base_url")
        if "extra_headers" in kwargs:
            attrs["headers"] = kwargs.pop("extra_headers")
        if "transport" in attrs:
            _check_transport(attrs["transport"])
        if "finetuned" in attrs:
            attrs["finetuned"] = _finetuned_ref(attrs["finetuned"])
        if "model" in kwargs or "transport" in attrs:
            model = kwargs.get("model", self.model)
            transport = attrs.get("transport", self.transport)
            _model_names.check_model(model, any_prefix=transport == "openai")
        new = super().copy(**kwargs)
        assert isinstance(new, LM)
        new.kwargs = {k: v for k, v in new.kwargs.items() if v is not None}
        for key, value in attrs.items():
            setattr(new, key, value)
        return new

    def dump_state(self) -> dict[str, Any]:
        """Settings to save with a program; ``LM(**lm.dump_state())`` recreates the LM
        (without its endpoint and key, which are never saved)."""
        state = super().dump_state()
        state["cache"] = self.cache
        state["num_retries"] = self.num_retries
        if isinstance(self.timeout, int | float):
            state["timeout"] = self.timeout
        if self.transport != "auto":
            state["transport"] = self.transport
        if self.finetuned is not None:
            state["finetuned"] = self.finetuned.to_state()
        return state

    def finetune(
        self,
        train_data: list[dict[str, Any]],
        train_kwargs: dict[str, Any] | None = None,
        *,
        provider: str | None = None,
        **options: Any,
    ) -> Any:
        """Start fine-tuning this model on chat examples (``{"messages": [...]}``).

        Returns a :class:`~dsx.runtime.finetune.FinetuneJob` (``status()``, ``events()``,
        ``cancel()``, ``result()`` → the fine-tuned LM). ``provider``: ``"openai"`` (the
        OpenAI-compatible fine-tuning API at this LM's endpoint, the default) or ``"local"``;
        ``options``: ``poll_interval``, ``max_poll_interval``, ``timeout`` (see
        ``docs/optimizers.md``, BootstrapFinetune).
        """
        from dsx.runtime.finetune.base import provider_for

        return provider_for(self, provider).start(
            self, list(train_data), dict(train_kwargs or {}), **options
        )

    # -- requests -------------------------------------------------------------------------
    # One request is written once, as the generator ``_attempts`` (cache, retries, the
    # structured-output fallback; see dsx.runtime._attempt); ``forward``, ``aforward`` and
    # ``astream`` only perform the steps it yields: send the request, or sleep.
    def forward(self, messages: list[Message], **params: Any) -> LMResponse:
        result: LMResponse = run_sync(self._attempts(self._prepare(messages, params)), self._send)
        return result

    async def aforward(self, messages: list[Message], **params: Any) -> LMResponse:
        core = self._attempts(self._prepare(messages, params))
        result: LMResponse = await run_async(core, self._asend)
        return result

    def _send(self, step: Send) -> LMResponse:
        call: _Call = step.payload
        return self._stream_sync(call) if call.stream else self._complete_sync(call)

    async def _asend(self, step: Send) -> LMResponse:
        call: _Call = step.payload
        return await (self._stream_async(call) if call.stream else self._complete_async(call))

    async def astream(self, messages: list[Message], **kwargs: Any) -> AsyncIterator[str]:
        """Yield the text of the first choice as it is generated.

        Failures before the first piece of text are retried like any request; once text
        has been yielded, a broken stream raises :class:`~dsx.errors.LMResponseError`.
        The finished call is recorded in history and usage and stored in the cache (a
        cache hit yields the whole text at once).

        Example:
            >>> async for delta in lm.astream([{"role": "user", "content": "Tell a joke"}]):
            ...     print(delta, end="")
        """
        params = {**self.kwargs, **kwargs}
        start = time.time()
        call = self._prepare(messages, params)
        # The async driver of dsx.runtime._attempt, unrolled: a Send step here also gives
        # the text away as it arrives.
        core = self._attempts(call)
        try:
            step = next(core)
            while True:
                if type(step) is Sleep:
                    await asyncio.sleep(step.seconds)
                    step = core.send(None)
                    continue
                assembler = _StreamAssembler(self, call)
                try:
                    async for chunk in self._open_stream_async(call):
                        delta = assembler.add(chunk)
                        if delta:
                            call.yielded = True  # from now on, a failure is not retried
                            yield delta
                    response = assembler.result()
                except Exception as exc:
                    step = core.throw(exc)
                else:
                    step = core.send(response)
        except StopIteration as done:
            response = done.value
        if response.cached and response.outputs and response.outputs[0]:
            yield response.outputs[0]
        self._record(messages, params, response, start)

    def _attempts(self, call: _Call) -> Core:
        """One request from start to answer: checks, cache, retries, format fallback.

        Yields :class:`~dsx.runtime._attempt.Send` with the call (make one attempt; the
        driver sends back the :class:`LMResponse` or throws in the exception) and
        :class:`~dsx.runtime._attempt.Sleep`; returns the response (``cached`` when it came
        from the cache).
        """
        # A missing key is a setup mistake: said first, even where requests are forbidden.
        no_key = _model_names.missing_key(self.model, call.api_base, call.api_key)
        if no_key is not None:
            raise no_key
        # The test switch looks at where the request would go, OPENAI_BASE_URL included.
        self.check_allowed(call.api_base or _model_names.endpoint_from_env(self.model))
        self._choose_format(call)
        cache = self._cache_for(call)
        retry: Retry | None = None  # made on the first failure: a cache hit needs none
        while True:
            if cache is not None:
                hit = cache.get(call.key)
                if hit is not None:
                    response = _from_entry(hit)
                    if self._short(call, response):  # cached before dsx filled choices
                        response = yield from self._fill_choices(call, response)
                        cache.put(call.key, _to_entry(response))
                    return self._done(call, response)
            try:
                response = yield Send(call)
            except Exception as exc:
                if retry is None:
                    seconds = _attempt_seconds(call.timeout)
                    retry = Retry(self, self.model, seconds, call.num_retries)
                err = retry.failed(exc)
                if self._step_down_format(call, err):
                    cache = self._cache_for(call)  # a new request: a new cache key
                    continue  # at once, and not counted as a retry
                yield from retry.again(err, exc, may_retry=not call.yielded)
                continue
            if self._short(call, response):
                response = yield from self._fill_choices(call, response)
            if cache is not None:
                cache.put(call.key, _to_entry(response))
            return self._done(call, response)

    @staticmethod
    def _short(call: _Call, response: LMResponse) -> bool:
        """Whether ``response`` has fewer choices than the call's ``n`` asks for."""
        want = call.params.get("n")
        return type(want) is int and want > len(response.outputs) and not call.stream

    def _fill_choices(self, call: _Call, response: LMResponse) -> Core:
        """Ask again for the choices an endpoint left out of an ``n > 1`` answer.

        Some OpenAI-compatible servers (llama.cpp's among them) answer one choice whatever
        ``n`` says; optimizers that sample several candidates at once (COPRO, MIPROv2)
        would then quietly get fewer. Each further request asks for the rest; a failed one
        ends the filling, keeping the choices already made. To an OpenAI-compatible endpoint
        each also sends its own ``seed`` (the call's, plus the choices made so far): without
        one, llama.cpp samples the same text for the same prompt every time.
        """
        want: int = call.params["n"]
        seed = call.params.get("seed")
        seeded = _model_names.provider_of(self.model) == "openai"
        outputs = list(response.outputs)
        finish = list(response.finish_reasons)
        usage = dict(response.usage)
        cost = response.cost
        for _ in range(want):  # bounded: each answer adds at least one choice
            missing = want - len(outputs)
            if missing <= 0:
                break
            params = {**call.params, "n": missing}
            if seeded:
                params["seed"] = (seed if type(seed) is int else 0) + len(outputs)
            extra = dataclasses.replace(call, params=params)
            try:
                more: LMResponse = yield Send(extra)
            except Exception:  # the choices already made stand
                break
            added = more.outputs[:missing]
            if not added:
                break
            reasons = more.finish_reasons[: len(added)]
            # finish reasons stay one per choice, or unknown ([]) for all
            aligned = len(finish) == len(outputs) and len(reasons) == len(added)
            outputs.extend(added)
            finish = finish + reasons if aligned else []
            for key, value in more.usage.items():
                usage[key] = usage.get(key, 0) + value
            cost = None if cost is None or more.cost is None else cost + more.cost
        return dataclasses.replace(
            response, outputs=outputs, finish_reasons=finish, usage=usage, cost=cost
        )

    # -- preparing ------------------------------------------------------------------------
    def _prepare(self, messages: list[Message], params: dict[str, Any]) -> _Call:
        params = dict(params)  # the structured-output fallback edits the call's copy
        # a streamify listener watching this call wants the text as it is generated
        tapped = _streaming.tap() is not None
        if _TRANSPORT_KEYS.isdisjoint(params):  # the usual case: the LM's own settings
            return _Call(
                messages=messages,
                params=params,
                api_base=self.api_base,
                api_key=self.api_key,
                headers=self.headers,
                timeout=self.timeout,
                num_retries=self.num_retries,
                use_cache=self.cache,
                stream=tapped,
                rollout_id=None,
                transport=self.transport,
            )
        over = {k: params.pop(k) for k in _TRANSPORT_KEYS.intersection(params)}
        headers = over.get("headers") or over.get("extra_headers") or self.headers
        call = _Call(
            messages=messages,
            params=params,
            api_base=over.get("api_base") or over.get("base_url") or self.api_base,
            api_key=over.get("api_key") or self.api_key,
            headers=headers,
            timeout=over.get("timeout", over.get("request_timeout", self.timeout)),
            num_retries=int(over.get("num_retries", self.num_retries)),
            use_cache=bool(over.get("cache", self.cache)),
            stream=bool(over.get("stream", False)) or tapped,
            rollout_id=over.get("rollout_id"),
            transport=over.get("transport", self.transport),
        )
        if call.transport != self.transport:
            _check_transport(call.transport)
        if call.rollout_id is not None and params.get("temperature") == 0:
            _warn_rollout_once()
        return call

    def _cache_for(self, call: _Call) -> Cache | None:
        if not call.use_cache:
            return None
        cache = get_cache()
        if not (cache.enable_memory or cache.enable_disk):
            return None
        call.key = request_key(
            model=self.model,
            messages=call.messages,
            params=call.params,
            rollout_id=call.rollout_id,
            model_type=self.model_type,
        )
        return cache

    def _litellm_kwargs(self, call: _Call, *, stream: bool) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"model": self.model, **call.params}
        if self.model_type == "chat":
            kwargs["messages"] = call.messages
        else:
            kwargs["prompt"] = _prompt_of(call.messages)
        # dsx retries; LiteLLM and the openai SDK must not retry underneath it.
        kwargs["num_retries"] = 0
        kwargs["max_retries"] = 0
        if call.api_base:
            kwargs["api_base"] = call.api_base
        if call.api_key:
            kwargs["api_key"] = call.api_key
        if call.headers:
            kwargs["extra_headers"] = call.headers
        # The openai SDK's default waits 600 s per read; dsx's deadline is the default.
        kwargs["timeout"] = _attempt_seconds(call.timeout) if call.timeout is None else call.timeout
        if stream:
            kwargs["stream"] = True
            kwargs.setdefault("stream_options", {"include_usage": True})
        return kwargs

    def _is_lean(self, call: _Call) -> bool:
        """Whether this call goes through the lean transport rather than LiteLLM."""
        if call.lean is None:
            if call.transport == "litellm":
                call.lean = False
            elif call.transport == "openai":
                call.lean = True
            else:
                call.lean = _lean().auto_eligible(
                    self.model, call.api_base, call.params, call.timeout
                )
        return call.lean

    def _wire(self, call: _Call, *, stream: bool) -> Any:
        chat = self.model_type == "chat"
        return _lean().build(
            model=self.model,
            model_type=self.model_type,
            messages=call.messages,
            prompt=None if chat else _prompt_of(call.messages),
            params=call.params,
            api_base=call.api_base,
            api_key=call.api_key,
            headers=call.headers,
            timeout=call.timeout,
            stream=stream,
        )

    # -- one attempt ----------------------------------------------------------------------
    def _complete_sync(self, call: _Call) -> LMResponse:
        if self._is_lean(call):
            return self._convert(_lean().complete(self._wire(call, stream=False)), lean=True)
        litellm = _lib()
        fn = litellm.completion if self.model_type == "chat" else litellm.text_completion
        kwargs = self._litellm_kwargs(call, stream=False)
        # The openai SDK bounds each read only: the deadline is kept by waiting for a worker.
        answer = call_within(lambda: fn(**kwargs), _attempt_seconds(call.timeout))
        return self._convert(answer)

    async def _complete_async(self, call: _Call) -> LMResponse:
        if self._is_lean(call):
            answer = await _lean().acomplete(self._wire(call, stream=False))
            return self._convert(answer, lean=True)
        litellm = _lib()
        fn = litellm.acompletion if self.model_type == "chat" else litellm.atext_completion
        seconds = _attempt_seconds(call.timeout)
        answer = await _within(fn(**self._litellm_kwargs(call, stream=False)), seconds, seconds)
        return self._convert(answer)

    def _stream_sync(self, call: _Call) -> LMResponse:
        assembler = _StreamAssembler(self, call, _streaming.tap())
        if self._is_lean(call):
            for chunk in _lean().stream(self._wire(call, stream=True)):
                assembler.add(chunk)
            return assembler.result()
        litellm = _lib()
        fn = litellm.completion if self.model_type == "chat" else litellm.text_completion
        kwargs = self._litellm_kwargs(call, stream=True)
        # A worker reads the stream, so the deadline holds while one chunk trickles too.
        chunks = iterate_within(lambda: fn(**kwargs), _attempt_seconds(call.timeout))
        try:
            for chunk in chunks:
                assembler.add(chunk)
        finally:
            chunks.close()
        return assembler.result()

    async def _stream_async(self, call: _Call) -> LMResponse:
        assembler = _StreamAssembler(self, call, _streaming.tap())
        async for chunk in self._open_stream_async(call):
            assembler.add(chunk)
        return assembler.result()

    async def _open_stream_async(self, call: _Call) -> AsyncIterator[Any]:
        if self._is_lean(call):
            chunks = _lean().astream(self._wire(call, stream=True))
            try:
                async for chunk in chunks:
                    yield chunk
            finally:
                await chunks.aclose()  # a consumer that stops early frees the connection now
            return
        litellm = _lib()
        fn = litellm.acompletion if self.model_type == "chat" else litellm.atext_completion
        seconds = _attempt_seconds(call.timeout)
        left = seconds
        deadline = time.monotonic() + (seconds or math.inf)
        stream = await _within(fn(**self._litellm_kwargs(call, stream=True)), left, seconds)
        try:
            chunks = stream.__aiter__()
            while True:
                if seconds is not None:
                    left = deadline - time.monotonic()
                try:
                    chunk = await _within(chunks.__anext__(), left, seconds)
                except StopAsyncIteration:
                    break
                yield chunk
        finally:
            aclose = getattr(stream, "aclose", None)
            if callable(aclose):
                with contextlib.suppress(Exception):
                    await aclose()

    def _convert(self, resp: Any, *, lean: bool = False) -> LMResponse:
        """An :class:`LMResponse` from LiteLLM's response object or the lean JSON dict."""
        choices = _get(resp, "choices") or []
        if self.model_type == "chat":
            outputs = [_chat_text(_get(c, "message")) for c in choices]
        else:
            outputs = [_get(c, "text") or "" for c in choices]
        if not outputs:
            raise LMResponseError(
                f"{self.model}: the provider's answer has no choices (got {str(resp)[:200]!r})",
                model=self.model,
            )
        raw_usage = _get(resp, "usage")
        usage = _usage_of(raw_usage)
        if lean:
            cost = _lean().cost(self.model, raw_usage) if usage else None
        else:
            hidden = getattr(resp, "_hidden_params", None)
            if isinstance(hidden, dict):
                cost = hidden.get("response_cost")
            else:
                cost = getattr(hidden, "response_cost", None)
            cost = float(cost) if isinstance(cost, int | float) else None
        finish = [_get(c, "finish_reason") for c in choices]
        return LMResponse(
            outputs=outputs,
            usage=usage,
            model=self.model,
            cost=cost,
            raw=resp,
            finish_reasons=[f if isinstance(f, str) else None for f in finish],
        )

    # -- structured output ----------------------------------------------------------------
    def _choose_format(self, call: _Call) -> None:
        """Send the asked ``response_format``, or the weaker one this endpoint is known to
        take (see :mod:`dsx.runtime._structured_output`)."""
        asked = call.params.get("response_format")
        mode = _formats.mode_of(asked)
        if mode is None:
            return
        call.format_asked = asked
        self._set_format(call, _formats.lower(mode, self._format_modes.get(self._format_key(call))))

    def _set_format(self, call: _Call, mode: _formats.Mode) -> None:
        call.format_mode = mode
        assert call.format_asked is not None
        sent = _formats.build(call.format_asked, mode)
        if sent is None:
            call.params.pop("response_format", None)
        else:
            call.params["response_format"] = sent

    def _step_down_format(self, call: _Call, err: LMError) -> bool:
        """After ``err``: whether to retry at once with a weaker ``response_format``."""
        if (
            call.format_mode is None
            or call.format_asked is None
            or not _formats.rejects_format(err)
        ):
            return False
        weaker = _formats.next_mode(call.format_mode, call.format_asked)
        if weaker is None:
            return False
        call.format_rejected.append(call.format_mode)
        self._set_format(call, weaker)
        return True

    def _done(self, call: _Call, response: LMResponse) -> LMResponse:
        """Remember the mode that worked after a fallback; label the response with it."""
        if call.format_rejected and call.format_mode is not None:
            _formats.remember(self._format_modes, self._format_key(call), call.format_mode)
        response.structured_output = call.format_mode
        return response

    def _format_key(self, call: _Call) -> tuple[str, str | None]:
        return (self.model, call.api_base)

    # -- history --------------------------------------------------------------------------
    def _record(
        self,
        messages: list[Message],
        params: dict[str, Any],
        response: LMResponse,
        start: float,
    ) -> None:
        if not _SECRET_KEYS.isdisjoint(params):
            params = {k: v for k, v in params.items() if k not in _SECRET_KEYS}
        super()._record(messages, params, response, start)


# -- deadlines ----------------------------------------------------------------------------


def _attempt_seconds(timeout: Any) -> float | None:
    """The deadline of one attempt: ``timeout`` when it is a number, the default when it is
    ``None``, none for a timeout object (LiteLLM's ``httpx.Timeout``)."""
    if timeout is None:
        return float(_lean().DEFAULT_TIMEOUT)
    if isinstance(timeout, int | float) and not isinstance(timeout, bool):
        return float(timeout)
    return None


async def _within(awaitable: Awaitable[Any], left: float | None, seconds: float | None) -> Any:
    """Await ``awaitable`` for at most ``left`` seconds (``None``: no limit); past it, raise
    the lean transport's ``DeadlineExceeded`` naming the attempt's ``seconds``."""
    if left is None or seconds is None:
        return await awaitable
    if left <= 0:
        if inspect.iscoroutine(awaitable):
            awaitable.close()
        raise _lean().DeadlineExceeded(seconds)
    try:
        return await asyncio.wait_for(awaitable, left)
    except TimeoutError as exc:
        raise _lean().DeadlineExceeded(seconds) from exc


# -- responses ----------------------------------------------------------------------------


def _prompt_of(messages: list[Message]) -> str:
    """The prompt a text-completion model gets: every message's text, blank-line separated."""
    return "\n\n".join(_text_of(m.get("content")) for m in messages)


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _get(obj: Any, name: str) -> Any:
    """A field of a response part: a dict (lean transport) or an object (LiteLLM)."""
    if type(obj) is dict:
        return obj.get(name)
    return getattr(obj, name, None)


def _chat_text(message: Any) -> str:
    """A chat choice's text. A reply with only tool calls becomes their JSON (see docs/lm.md)."""
    if message is None:
        return ""
    text = _text_of(_get(message, "content"))
    calls = _get(message, "tool_calls")
    if text or not calls:
        return text
    return json.dumps({"tool_calls": [_tool_call(c) for c in calls]}, ensure_ascii=False)


def _tool_call(call: Any) -> dict[str, Any]:
    function = _get(call, "function")
    name = _get(function, "name")
    args: Any = _get(function, "arguments")
    if isinstance(args, str):
        with contextlib.suppress(ValueError):
            args = json.loads(args)
    return {"id": _get(call, "id"), "name": name, "arguments": args}


def _usage_of(usage: Any) -> dict[str, int]:
    if usage is None:
        return {}
    out: dict[str, int] = {}
    for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
        value = usage.get(key) if isinstance(usage, dict) else getattr(usage, key, None)
        if isinstance(value, int | float):
            out[key] = int(value)
    return out


def _to_entry(response: LMResponse) -> dict[str, Any]:
    return {
        "outputs": list(response.outputs),
        "usage": dict(response.usage),
        "cost": response.cost,
        "model": response.model,
        "finish_reasons": list(response.finish_reasons),
    }


def _from_entry(entry: dict[str, Any]) -> LMResponse:
    return LMResponse(
        outputs=list(entry["outputs"]),
        usage=dict(entry.get("usage") or {}),
        model=entry.get("model", ""),
        cost=entry.get("cost"),
        cached=True,
        finish_reasons=list(entry.get("finish_reasons") or []),
    )


class _StreamAssembler:
    """Builds an :class:`LMResponse` from stream chunks and notices streams cut short."""

    def __init__(
        self, lm: LM, call: _Call | None, listener: Callable[[str], None] | None = None
    ) -> None:
        self.lm = lm
        self.call = call
        self.listener = listener  # dsx.streamify's: gets the first choice's text as it comes
        self.chat = lm.model_type == "chat"
        self.texts: dict[int, list[str]] = {}
        self.finish: dict[int, str] = {}
        self.calls: dict[int, dict[int, dict[str, Any]]] = {}
        self.usage: dict[str, int] = {}
        self.raw_usage: Any = None
        self.cost: float | None = None

    def add(self, chunk: Any) -> str | None:
        """Take one chunk; returns the text it adds to the first choice."""
        first: str | None = None
        for choice in _get(chunk, "choices") or []:
            index = _get(choice, "index") or 0
            if self.chat:
                delta = _get(choice, "delta")
                text = _get(delta, "content") if delta is not None else None
                for call in _get(delta, "tool_calls") or []:
                    self._add_tool_call(index, call)
            else:
                text = _get(choice, "text")
            if text:
                self.texts.setdefault(index, []).append(text)
                if index == 0:
                    first = text
                    if self.listener is not None:
                        if self.call is not None:
                            self.call.yielded = True  # given away: a failure is not retried
                        self.listener(text)
            else:
                self.texts.setdefault(index, [])
            reason = _get(choice, "finish_reason")
            if reason:
                self.finish[index] = reason
        usage = _get(chunk, "usage")
        if usage:
            self.usage = _usage_of(usage) or self.usage
            self.raw_usage = usage
            cost = _get(usage, "cost")
            if isinstance(cost, int | float):
                self.cost = float(cost)
        return first

    def _add_tool_call(self, index: int, call: Any) -> None:
        slot = self.calls.setdefault(index, {}).setdefault(
            _get(call, "index") or 0, {"id": None, "name": "", "arguments": ""}
        )
        slot["id"] = slot["id"] or _get(call, "id")
        function = _get(call, "function")
        if function is not None:
            slot["name"] += _get(function, "name") or ""
            slot["arguments"] += _get(function, "arguments") or ""

    def result(self) -> LMResponse:
        model = self.lm.model
        # LiteLLM reports a cut connection itself (MidStreamFallbackError); a stream that
        # ends cleanly but without a finish_reason was cut off too. With n > 1, LiteLLM
        # forwards the finish_reason of the first choice only, so one is enough.
        if not self.finish:
            got = "".join(self.texts.get(0, []))
            raise LMResponseError(
                f"{model}: the response stream ended before the model finished (no "
                f"finish_reason; received {len(got)} characters: {got[:80]!r}). The "
                "connection was probably cut; the request is retried.",
                model=model,
            )
        outputs = []
        indexes = sorted(self.texts.keys() | self.calls.keys())
        for index in indexes:
            text = "".join(self.texts.get(index, []))
            calls = self.calls.get(index)
            if not text and calls:
                ordered = [calls[i] for i in sorted(calls)]
                for c in ordered:
                    with contextlib.suppress(ValueError):
                        c["arguments"] = json.loads(c["arguments"]) if c["arguments"] else {}
                text = json.dumps({"tool_calls": ordered}, ensure_ascii=False)
            outputs.append(text)
        if not outputs:
            outputs = [""]
        cost = self.cost
        if cost is None and self.usage:
            if self.call is not None and self.call.lean:
                cost = _lean().cost(model, self.raw_usage)
            else:
                cost = _token_cost(model, self.usage)
        return LMResponse(
            outputs=outputs,
            usage=self.usage,
            model=model,
            cost=cost,
            finish_reasons=[self.finish.get(i) for i in indexes] or [self.finish.get(0)],
        )


def _token_cost(model: str, usage: dict[str, int]) -> float | None:
    try:
        prompt, completion = _lib().cost_per_token(
            model=model,
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
        )
        return float(prompt + completion)
    except Exception:  # unknown models have no price: cost stays unknown
        return None


def _finetuned_ref(value: Any) -> Any:
    if value is None or not isinstance(value, Mapping):
        return value
    from dsx.runtime.finetune.base import FinetunedModel

    return FinetunedModel.from_state(dict(value))


def _check_transport(transport: Any) -> None:
    if transport not in _TRANSPORTS:
        raise ValueError(f"transport must be 'auto', 'litellm' or 'openai', got {transport!r}")


def _warn_rollout_once() -> None:
    global _warned_rollout
    if not _warned_rollout:
        _warned_rollout = True
        warnings.warn(
            "dsx.LM: rollout_id gives a separate cache entry, but with temperature=0 the "
            "provider will most likely return the same answer; set temperature > 0 to get "
            "distinct samples.",
            UserWarning,
            stacklevel=5,
        )


# -- mapping provider errors ---------------------------------------------------------------

_TIMEOUT_NAMES = frozenset(
    {
        "Timeout",
        "APITimeoutError",
        "TimeoutException",
        "ReadTimeout",
        "ConnectTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "SocketTimeoutError",
        "ServerTimeoutError",
    }
)
_INCOMPLETE_NAMES = frozenset(
    {"ClientPayloadError", "ContentLengthError", "TransferEncodingError", "IncompleteRead"}
)
_CONNECTION_NAMES = frozenset(
    {
        "APIConnectionError",
        "ConnectError",
        "ReadError",
        "WriteError",
        "NetworkError",
        "RemoteProtocolError",
        "LocalProtocolError",
        "ClientOSError",
        "ClientConnectionError",
        "ClientConnectorError",
        "ServerDisconnectedError",
        "gaierror",  # socket.gaierror: DNS
    }
)
_NETWORK_ERRORS = (ConnectionError, TimeoutError)
_PROVIDER_MODULES = ("litellm", "openai", "httpx", "httpcore", "h11", "aiohttp", "anthropic")
_PREFIX = re.compile(r"^(?:litellm\.\w+:\s*)+|^\w*(?:Error|Exception):\s*|^\w+Exception - ")
#: A 5xx whose message is a request-validation error (pydantic, FastAPI): a bad request.
_VALIDATION = re.compile(
    r"validation errors?\b|Input should be|Extra inputs are not permitted|unprocessable"
    r"|Field required",
    re.IGNORECASE,
)
_CONTEXT_HINTS = re.compile(
    r"context.{0,20}(length|window)|maximum context|too many tokens|prompt is too long",
    re.IGNORECASE,
)


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(out) < 32:
        seen.add(id(current))
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


def _root(chain: list[BaseException]) -> BaseException:
    """The innermost cause in ``chain``, not following a provider error's implicit context:
    an unrelated exception that was being handled when the provider error was raised
    (e.g. asyncio's "no running event loop" in a worker thread) says nothing about it."""
    root = chain[0]
    for outer, inner in itertools.pairwise(chain):
        if outer.__cause__ is None and _from_provider(outer) and not _from_provider(inner):
            break
        root = inner
    return root


def _names(exc: BaseException) -> set[str]:
    return {klass.__name__ for klass in type(exc).__mro__}


def _from_provider(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return (
        module.split(".")[0] in _PROVIDER_MODULES
        or isinstance(exc, _NETWORK_ERRORS)
        or type(exc).__name__ == "gaierror"
        or getattr(exc, "dsx_transport", False) is True  # the lean transport's own errors
    )


def _provider_message(exc: BaseException) -> str:
    """The provider's own words: the error body's message, else LiteLLM's text unprefixed."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        message = inner.get("message") if isinstance(inner, dict) else None
        if isinstance(message, str) and message:
            return message
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            doc = response.json()
            message = doc["error"]["message"] if isinstance(doc.get("error"), dict) else None
            if isinstance(message, str) and message:
                return message
        except Exception:
            pass
    text = getattr(exc, "message", None)
    text = text if isinstance(text, str) and text else str(exc)
    while True:
        stripped = _PREFIX.sub("", text, count=1).strip()
        if stripped == text:
            return text
        text = stripped


def _error_code(exc: BaseException) -> str | None:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        code = inner.get("code") if isinstance(inner, dict) else None
        if isinstance(code, str):
            return code
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) else None


def _request_id(exc: BaseException) -> str | None:
    """The provider's id for the failed request (``x-request-id``), when it sent one."""
    own = getattr(exc, "request_id", None)
    if isinstance(own, str) and own:
        return own
    for headers in (
        getattr(exc, "litellm_response_headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
        getattr(exc, "headers", None),
    ):
        if not headers:
            continue
        try:
            lower = {str(k).lower(): str(v) for k, v in headers.items()}
        except Exception:
            continue
        for key in ("x-request-id", "request-id"):
            if lower.get(key):
                return lower[key]
    return None


def _retry_after(exc: BaseException) -> float | None:
    """Seconds from ``retry-after-ms`` / ``Retry-After`` of the failed response, if any."""
    sources = (
        getattr(exc, "litellm_response_headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
        getattr(exc, "headers", None),
    )
    for headers in sources:
        if not headers:
            continue
        try:
            lower = {str(k).lower(): str(v) for k, v in headers.items()}
        except Exception:
            continue
        try:
            if "retry-after-ms" in lower:
                return max(0.0, float(lower["retry-after-ms"]) / 1000)
            if "retry-after" in lower:
                value = lower["retry-after"]
                try:
                    return max(0.0, float(value))
                except ValueError:
                    import email.utils  # an HTTP date: rare, and the module is slow to import

                    when = email.utils.parsedate_to_datetime(value)
                    return max(0.0, when.timestamp() - time.time())
        except (ValueError, TypeError, OverflowError):
            continue
    return None


def _missing_key(root: BaseException) -> bool:
    """The openai SDK's client-side "Missing credentials" error (no status, no request)."""
    klass = type(root)
    return (
        klass.__name__ == "OpenAIError"
        and klass.__module__.split(".")[0] == "openai"
        and ("api_key" in str(root) or "credentials" in str(root).lower())
    )


def map_error(exc: BaseException, model: str, timeout: Any = None) -> LMError | None:
    """Translate a LiteLLM / openai / httpx / aiohttp / lean-transport failure into an
    :class:`LMError`.

    Returns ``None`` for exceptions that are not provider failures (bugs, cancellation),
    which the caller re-raises unchanged. Transport failures are recognised from the
    exception chain first, because LiteLLM reports them as HTTP 500.
    """
    chain = _chain(exc)
    if not any(_from_provider(e) for e in chain):
        return None
    root = _root(chain)
    root_text = str(root) or type(root).__name__
    status = getattr(exc, "status_code", None)
    status = status if isinstance(status, int) and 100 <= status <= 599 else None
    top = _names(exc)

    def make(kind: type[LMError], text: str, provider: str, *, code: int | None = None) -> LMError:
        return kind(
            text,
            model=model,
            status_code=code,
            provider_message=provider,
            retry_after=_retry_after(exc),
            provider=model.split("/", 1)[0] if "/" in model else "openai",
            provider_code=_error_code(exc),
            request_id=_request_id(exc),
        )

    chain_names = set().union(*(_names(e) for e in chain))
    if (
        chain_names & _TIMEOUT_NAMES
        or any(isinstance(e, TimeoutError) for e in chain)
        or status == 408
    ):
        within = f" within {timeout}s" if isinstance(timeout, int | float) else ""
        return make(
            LMTimeoutError,
            f"{model}: no answer{within}; the request timed out ({root_text}). Raise "
            "timeout=... if the model is slow, or check that the endpoint is up.",
            root_text,
            code=408 if status == 408 else None,
        )
    if any(isinstance(e, json.JSONDecodeError) for e in chain):
        return make(
            LMResponseError,
            f"{model}: the provider's answer is not valid JSON ({root_text}). The endpoint "
            "is probably not an OpenAI-compatible API, or the response was garbled.",
            root_text,
        )
    incomplete = chain_names & _INCOMPLETE_NAMES or any(
        "complete message body" in str(e) or "incomplete chunked" in str(e) for e in chain
    )
    if incomplete or "MidStreamFallbackError" in top:
        return make(
            LMResponseError,
            f"{model}: the response broke off before it was complete: the connection "
            f"closed mid-response ({root_text}).",
            root_text,
        )
    if chain_names & _CONNECTION_NAMES or any(isinstance(e, _NETWORK_ERRORS) for e in chain):
        return make(
            LMConnectionError,
            f"{model}: connection to the provider failed ({root_text}). Check api_base and "
            "that the endpoint is reachable.",
            root_text,
        )

    provider = _provider_message(exc)
    quoted = provider.rstrip(". ")
    if _missing_key(root):
        # The openai SDK refused to send without a key; LiteLLM reports that as HTTP 500.
        return make(
            AuthenticationError,
            f"{model}: no API key: {root_text.rstrip('. ')}. Pass api_key=... or set the "
            "provider's key variable (e.g. OPENAI_API_KEY); any non-empty key does for a "
            "local server.",
            root_text,
        )
    at = f" ({status})" if status else ""
    if (
        "ContextWindowExceededError" in top
        or _error_code(exc) == "context_length_exceeded"
        or (status == 400 and _CONTEXT_HINTS.search(provider))
    ):
        return make(
            ContextWindowExceededError,
            f"{model}: the prompt does not fit the model's context window{at}: {quoted}. "
            "Shorten the input (fewer demos, less context) or lower max_tokens, or use a "
            "model with a larger window.",
            provider,
            code=status,
        )
    if status == 401 or (status is None and "AuthenticationError" in top):
        return make(
            AuthenticationError,
            f"{model}: authentication failed{at}: {quoted}. Check the api_key (or the "
            "provider's key variable, e.g. OPENAI_API_KEY).",
            provider,
            code=status,
        )
    if status == 403 or (status is None and "PermissionDeniedError" in top):
        return make(
            AuthenticationError,
            f"{model}: permission denied{at}: {quoted}. The key is not allowed to use this "
            "model or endpoint.",
            provider,
            code=status,
        )
    if status == 404 or (status is None and "NotFoundError" in top):
        return make(
            ModelNotFoundError,
            f"{model}: model or endpoint not found{at}: {quoted}. Check the model name "
            "('provider/model') and api_base.",
            provider,
            code=status,
        )
    if status == 429 or (status is None and "RateLimitError" in top):
        return make(
            RateLimitError,
            f"{model}: rate limited{at}: {quoted}. Lower the concurrency (num_threads) or "
            "raise num_retries.",
            provider,
            code=status,
        )
    if status is not None and status >= 500 and _VALIDATION.search(provider):
        # Servers built on FastAPI/pydantic (llama-cpp-python's, for one) answer a request
        # they cannot parse with HTTP 500; sending it again cannot help.
        return make(
            BadRequestError,
            f"{model}: the provider rejected the request as invalid ({status}, a request "
            f"validation error): {quoted}. Check the request parameters for this model.",
            provider,
            code=status,
        )
    if (status is not None and status >= 500) or (
        status is None and top & {"InternalServerError", "ServiceUnavailableError"}
    ):
        return make(
            ServerError, f"{model}: the provider failed{at}: {quoted}.", provider, code=status
        )
    if status in (400, 413, 422) or (status is None and "BadRequestError" in top):
        return make(
            BadRequestError,
            f"{model}: the provider rejected the request{at}: {quoted}. Check the request "
            "parameters for this model.",
            provider,
            code=status,
        )
    err = make(LMError, f"{model}: the request failed{at}: {quoted}.", provider, code=status)
    # 409 (conflict) is transient in practice; the openai SDK retries it too.
    err.retryable = status == 409
    return err
