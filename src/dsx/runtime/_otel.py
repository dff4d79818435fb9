"""OpenTelemetry spans for programs, modules, predictors, LM requests, tools and evaluations.

Tracing is one observer on dsx's call hooks (:mod:`dsx.runtime.callbacks`), registered the
first time tracing is asked for: ``dsx.configure(tracing=True)`` (the global tracer
provider, or one built from the ``OTEL_*`` environment variables when the application set
none), ``tracing=<TracerProvider>``, or the environment alone (``OTEL_TRACES_EXPORTER`` or
an ``OTEL_EXPORTER_OTLP_*ENDPOINT`` set, ``OTEL_SDK_DISABLED`` not true). Each call
resolves ``dsx.settings.tracing`` again, so ``dsx.context(tracing=False)`` turns it off
for one task. When it is the only thing watching a module or LM call, the hooks hand the
call to it directly (:meth:`TracingObserver.run_sync`): no call ids, no handler lookups.

A span is made current while its call runs (OpenTelemetry's context is a context
variable), so children started in other asyncio tasks, in the Evaluate/Parallel engine or
in worker threads that copy the context nest under it; dsx's own open spans (``_Frame``)
sit in a context variable beside it, which is how an LM request finds its predictor.
Attributes follow the GenAI semantic conventions (``gen_ai.operation.name``,
``gen_ai.request.model``, ``gen_ai.usage.input_tokens``, ...). Prompts and replies are
recorded only when ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` is true (read
once per trace, at its root). ``opentelemetry`` is imported on the first span, never by
``import dsx``.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import threading
from collections.abc import Iterator
from typing import Any

from dsx._extras import require
from dsx._version import __version__
from dsx.runtime import callbacks as _cb
from dsx.runtime.settings import settings

__all__ = ["TracingObserver", "observer"]

logger = logging.getLogger("dsx.callbacks")

_MAX_ATTR = 4000  # characters of a recorded prompt, reply or value

_FEATURE = "Tracing (dsx.configure(tracing=...) or the OTEL_* variables)"


def _capture_content() -> bool:
    value = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
    return value.strip().lower() in ("1", "true", "yes")


def _capture_here() -> bool:
    """Whether a span starting here records content: its trace's root decides."""
    parent = _current.get()
    return parent.capture if parent is not None else _capture_content()


_lock = threading.Lock()
_env_provider: Any = None


def _provider_from_env() -> Any:
    """The application's global provider, or (once) an SDK provider built from ``OTEL_*``."""
    global _env_provider
    trace = require("tracing", "opentelemetry.trace", feature=_FEATURE, package="opentelemetry-api")

    current = trace.get_tracer_provider()
    if not isinstance(current, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
        return current
    with _lock:
        if _env_provider is None:
            _env_provider = _build_provider()
            trace.set_tracer_provider(_env_provider)
    return _env_provider


def _build_provider() -> Any:
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:  # the API alone: spans go to whatever the application installs
        from opentelemetry import trace

        return trace.get_tracer_provider()
    service = os.environ.get("OTEL_SERVICE_NAME") or "dsx"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp") or "otlp"
    for name in (n.strip().lower() for n in names.split(",")):
        exporter: Any = None
        if name == "otlp":
            protocol = (
                os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf"
            )
            if protocol == "grpc":
                from opentelemetry.exporter.otlp.proto.grpc import trace_exporter as grpc

                exporter = grpc.OTLPSpanExporter()
            else:
                from opentelemetry.exporter.otlp.proto.http import trace_exporter as http

                exporter = http.OTLPSpanExporter()
        elif name == "console":
            exporter = ConsoleSpanExporter()
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _tracer_for(value: Any) -> Any:
    """The tracer for a ``tracing`` setting value (``None``: no spans)."""
    global _last
    last = _last  # one read: another thread may replace it
    if value is last[0] and value is not True:  # the same provider as last time
        return last[1]
    if not value:
        return None
    if value is True:
        provider = _provider_from_env()
    elif hasattr(value, "start_span"):
        return value  # a Tracer
    else:
        provider = value
    cached = _tracers.get(id(provider))
    if cached is None or cached[0] is not provider:
        cached = _tracers[id(provider)] = (provider, provider.get_tracer("dsx", __version__))
    if value is provider:
        _last = (value, cached[1])
    return cached[1]


_tracers: dict[int, tuple[Any, Any]] = {}
#: The last provider asked for and its tracer (the per-call lookup is one identity test).
_last: tuple[Any, Any] = (None, None)
_modules: tuple[Any, Any] | None = None


def _api() -> tuple[Any, Any]:
    """``opentelemetry.context`` and ``opentelemetry.trace``, imported on first use."""
    global _modules
    if _modules is None:
        trace = require(
            "tracing", "opentelemetry.trace", feature=_FEATURE, package="opentelemetry-api"
        )
        _modules = (require("tracing", "opentelemetry.context", feature=_FEATURE), trace)
    return _modules


_predict: Any = None


def _predict_class() -> Any:
    global _predict
    if _predict is None:
        from dsx.runtime.predict import Predict  # not at import: predict imports callbacks

        _predict = Predict
    return _predict


def _short(value: Any) -> str:
    try:
        text = json.dumps(_plain(value), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _MAX_ATTR else text[: _MAX_ATTR - 1] + "…"


def _plain(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _provider_of(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else model


class _Frame:
    """A dsx span that is open here and may have children (every kind but LM requests):
    what its children ask of it and what its end needs."""

    __slots__ = ("capture", "folded", "frame_token", "kind", "otel_token", "recording", "span")

    def __init__(self, span: Any, kind: str, capture: bool) -> None:
        self.span = span
        # False when the sampler dropped it: then no attributes are worked out for it
        self.recording: bool = span.is_recording()
        self.kind = kind
        self.capture = capture  # whether prompts and values are recorded
        # compact traces: the attributes of this predictor's LM requests
        self.folded: dict[str, Any] | None = None
        self.otel_token: Any = None
        self.frame_token: Any = None


#: The innermost open dsx span of this task or thread (a context variable, like
#: OpenTelemetry's own current span, so it follows asyncio tasks and copied contexts).
_current: contextvars.ContextVar[_Frame | None] = contextvars.ContextVar(
    "dsx_otel_frame", default=None
)


def _open(tracer: Any, kind: str, name: str, attributes: dict[str, Any], capture: bool) -> _Frame:
    """Start a span that is current while its call runs (its children nest under it)."""
    context, trace = _api()
    span = tracer.start_span(name, attributes=attributes)
    frame = _Frame(span, kind, capture)
    frame.otel_token = context.attach(trace.set_span_in_context(span))
    frame.frame_token = _current.set(frame)
    return frame


def _close(
    frame: _Frame, exception: BaseException | None, attributes: dict[str, Any] | None
) -> None:
    try:  # noqa: SIM105 - contextlib.suppress costs an object per call on the hot path
        _current.reset(frame.frame_token)
    except (ValueError, RuntimeError):  # a span ended in another context still ends
        pass
    _api()[0].detach(frame.otel_token)
    _finish(frame.span, exception, attributes)


def _finish(span: Any, exception: BaseException | None, attributes: dict[str, Any] | None) -> None:
    if attributes:
        span.set_attributes(attributes)
    if exception is not None:
        _, trace = _api()
        if isinstance(exception, Exception):
            span.record_exception(exception)
        span.set_attribute("error.type", type(exception).__qualname__)
        span.set_status(trace.Status(trace.StatusCode.ERROR, str(exception)[:500]))
    span.end()


# -- what each kind of span records -----------------------------------------------------------

_AGENTS = frozenset({"ReAct", "CodeAct", "ProgramOfThought"})
_is_predictor: dict[type, bool] = {}


def _module_span(instance: Any, parent: _Frame | None) -> tuple[str, str, dict[str, Any]]:
    """(kind, name, attributes) of a module call's span; the name and attributes are built
    once per class (and signature) and shared, so a caller that adds to them copies."""
    cls = type(instance)
    predictor = _is_predictor.get(cls)
    if predictor is None:
        predictor = _is_predictor[cls] = issubclass(cls, _predict_class())
    if predictor:
        signature = instance.signature
        cached = signature._adapter_cache.get(cls)  # the class: no other key is one
        if cached is None:
            cached = signature._adapter_cache[cls] = (
                "predictor",
                f"predict {signature.__name__}",
                {
                    "dsx.span.kind": "predictor",
                    "dsx.module.type": cls.__name__,
                    "dsx.signature": signature.signature,
                },
            )
        return cached
    kind = "program" if parent is None or parent.kind == "evaluate" else "module"
    found = _module_spans.get((cls, kind))
    if found is None:
        attributes: dict[str, Any] = {"dsx.span.kind": kind, "dsx.module.type": cls.__name__}
        if cls.__name__ in _AGENTS:
            attributes["gen_ai.operation.name"] = "invoke_agent"
            attributes["gen_ai.agent.name"] = cls.__name__
        found = _module_spans[(cls, kind)] = (kind, f"{kind} {cls.__name__}", attributes)
    return found


_module_spans: dict[tuple[type, str], tuple[str, str, dict[str, Any]]] = {}


def _open_module(tracer: Any, instance: Any, inputs: dict[str, Any], call_id: str | None) -> _Frame:
    parent = _current.get()
    kind, name, attributes = _module_span(instance, parent)
    # read once per trace: a nested call records what its root records
    capture = parent.capture if parent is not None else _capture_content()
    if capture or call_id is not None:
        attributes = dict(attributes)
        if call_id is not None:
            attributes["dsx.call_id"] = call_id
        if capture:
            attributes["dsx.inputs"] = _short(inputs.get("kwargs") or inputs)
    return _open(tracer, kind, name, attributes, capture)


def _module_end_attributes(frame: _Frame, outputs: Any) -> dict[str, Any] | None:
    if not frame.recording:
        return None
    extra = frame.folded
    if outputs is not None and frame.capture:
        extra = {**(extra or {}), "dsx.outputs": _short(outputs)}
    return extra


_REQUEST_PARAMS = (
    ("temperature", "gen_ai.request.temperature"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("top_p", "gen_ai.request.top_p"),
    ("n", "gen_ai.request.choice.count"),
)
_models: dict[tuple[str, str], dict[str, Any]] = {}


def _request_attributes(instance: Any, inputs: dict[str, Any], capture: bool) -> dict[str, Any]:
    """The GenAI attributes of an LM request, known before it is made."""
    model = str(getattr(instance, "model", "") or "")
    model_type = str(getattr(instance, "model_type", "chat"))
    base = _models.get((model, model_type))
    if base is None:
        if len(_models) > 1000:  # models named per call: keep the cache bounded
            _models.clear()
        base = _models[(model, model_type)] = {
            "gen_ai.operation.name": "chat" if model_type == "chat" else "text_completion",
            "gen_ai.provider.name": _provider_of(model),
            "gen_ai.request.model": model,
        }
    attributes = dict(base)
    own = getattr(instance, "kwargs", None) or {}
    given = inputs.get("kwargs") or {}
    if own or given:
        for key, attr in _REQUEST_PARAMS:
            value = given[key] if key in given else own.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                attributes[attr] = value
    if capture:
        attributes["gen_ai.input.messages"] = _short(inputs.get("messages"))
    return attributes


def _response_attributes(response: Any, capture: bool) -> dict[str, Any]:
    """The GenAI attributes of an LM response (an :class:`~dsx.LMResponse`)."""
    return _add_response({}, response, capture)


def _add_response(attributes: dict[str, Any], response: Any, capture: bool) -> dict[str, Any]:
    attributes["dsx.cached"] = bool(getattr(response, "cached", False))
    model = getattr(response, "model", None)
    if model:
        attributes["gen_ai.response.model"] = model
    usage = getattr(response, "usage", None)
    if usage:
        tokens = usage.get("prompt_tokens")
        if tokens is not None:
            attributes["gen_ai.usage.input_tokens"] = tokens
        tokens = usage.get("completion_tokens")
        if tokens is not None:
            attributes["gen_ai.usage.output_tokens"] = tokens
    cost = getattr(response, "cost", None)
    if cost is not None:
        attributes["dsx.cost_usd"] = cost
    reasons = getattr(response, "finish_reasons", None)
    if reasons:
        reasons = [r for r in reasons if r]
        if reasons:
            attributes["gen_ai.response.finish_reasons"] = reasons
    if capture:
        attributes["gen_ai.output.messages"] = _short(getattr(response, "outputs", None))
    return attributes


def _lm_span(tracer: Any, instance: Any, attributes: dict[str, Any]) -> Any:
    """Start an LM request's span: a leaf, so it is never made current (saves the attach)."""
    _, trace = _api()
    attributes["dsx.span.kind"] = "lm"
    model = attributes["gen_ai.request.model"]
    return tracer.start_span(f"chat {model}", kind=trace.SpanKind.CLIENT, attributes=attributes)


def _fold(parent: _Frame, instance: Any, inputs: dict[str, Any], response: Any) -> None:
    """Add one LM request to its predictor's span (compact traces): token counts and cost
    add up over the predictor's requests; the rest is the last request's."""
    if not parent.recording:
        return
    folded = parent.folded
    capture = parent.capture
    if folded is None:  # the first request (the usual case): straight into the span's dict
        folded = parent.folded = _request_attributes(instance, inputs, capture)
        if response is not None:
            _add_response(folded, response, capture)
        folded["dsx.lm.requests"] = 1
        return
    folded.update(_request_attributes(instance, inputs, capture))
    if response is not None:
        extra = _response_attributes(response, capture)
        for key in _SUMMED:
            value = extra.pop(key, None)
            if value is not None:
                folded[key] = (folded.get(key) or 0) + value
        folded.update(extra)
    folded["dsx.lm.requests"] += 1


_SUMMED = ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "dsx.cost_usd")


def _folds_into(parent: _Frame | None) -> bool:
    """Whether an LM request made here goes on its predictor's span (compact traces)."""
    return (
        parent is not None
        and parent.kind == "predictor"
        and not settings.get("tracing_lm_spans", True)
    )


def _failed(where: str) -> None:
    logger.warning("tracing failed in %s; the call goes on untraced", where, exc_info=True)


class TracingObserver:
    """Opens a span per call. The callbacks machinery calls it like a callback; when it is
    the only thing watching a module or LM call, it runs the call itself (:meth:`run_sync`,
    :meth:`run_async`), without the generic dispatch."""

    def __init__(self) -> None:
        # call id -> the open span: a frame (modules, tools, ...) or an LM request's
        # (span, whether prompts are recorded); compact traces: an LM request's call id ->
        # (its predictor's frame, the LM, the request's inputs)
        self.spans: dict[str, Any] = {}
        self.folded_lm: dict[str, tuple[_Frame, Any, dict[str, Any]]] = {}

    # -- the direct path: tracing is all that watches -----------------------------------------
    def run_sync(
        self, kind: str, instance: Any, inputs: dict[str, Any], fn: Any, args: tuple[Any, ...]
    ) -> Any:
        """Run ``fn(*args)`` (a ``kind`` call on ``instance``) inside its span."""
        if kind == "module":
            frame = self._direct_module(instance, inputs)
            if frame is None:
                return fn(*args)
            try:
                result = fn(*args)
            except BaseException as exc:
                self._direct_close(frame, exc, None)
                raise
            self._direct_close(frame, None, result)
            return result
        if kind == "lm":
            parent = _current.get()
            if _folds_into(parent):
                assert parent is not None
                try:
                    response = fn(*args)
                except BaseException as exc:
                    self._direct_fold(parent, instance, inputs, None, exc)
                    raise
                self._direct_fold(parent, instance, inputs, response, None)
                return response
            started = self._direct_lm(instance, inputs, parent)
            if started is None:
                return fn(*args)
            try:
                response = fn(*args)
            except BaseException as exc:
                self._direct_lm_end(started, None, exc)
                raise
            self._direct_lm_end(started, response, None)
            return response
        # other kinds (tools, evaluations, ...): the hooks, with this observer alone
        return _cb.call_sync(kind, instance, (self,), inputs, fn, *args)  # type: ignore[arg-type]

    async def run_async(
        self, kind: str, instance: Any, inputs: dict[str, Any], fn: Any, args: tuple[Any, ...]
    ) -> Any:
        """The async form of :meth:`run_sync` (a cancellation ends the span as an error)."""
        if kind == "module":
            frame = self._direct_module(instance, inputs)
            if frame is None:
                return await fn(*args)
            try:
                result = await fn(*args)
            except BaseException as exc:
                self._direct_close(frame, exc, None)
                raise
            self._direct_close(frame, None, result)
            return result
        if kind == "lm":
            parent = _current.get()
            if _folds_into(parent):
                assert parent is not None
                try:
                    response = await fn(*args)
                except BaseException as exc:
                    self._direct_fold(parent, instance, inputs, None, exc)
                    raise
                self._direct_fold(parent, instance, inputs, response, None)
                return response
            started = self._direct_lm(instance, inputs, parent)
            if started is None:
                return await fn(*args)
            try:
                response = await fn(*args)
            except BaseException as exc:
                self._direct_lm_end(started, None, exc)
                raise
            self._direct_lm_end(started, response, None)
            return response
        return await _cb.call_async(kind, instance, (self,), inputs, fn, *args)  # type: ignore[arg-type]

    # A failure in tracing is logged and never reaches the program, as for callbacks.
    def _direct_module(self, instance: Any, inputs: dict[str, Any]) -> _Frame | None:
        try:
            tracer = _tracer_for(settings.get("tracing"))
            return None if tracer is None else _open_module(tracer, instance, inputs, None)
        except Exception:
            _failed("a module's start")
            return None

    def _direct_close(self, frame: _Frame, exception: BaseException | None, outputs: Any) -> None:
        try:
            _close(frame, exception, _module_end_attributes(frame, outputs))
        except Exception:
            _failed("a module's end")

    def _direct_lm(
        self, instance: Any, inputs: dict[str, Any], parent: _Frame | None
    ) -> tuple[Any, bool] | None:
        try:
            tracer = _tracer_for(settings.get("tracing"))
            if tracer is None:
                return None
            capture = parent.capture if parent is not None else _capture_content()
            attributes = _request_attributes(instance, inputs, capture)
            return _lm_span(tracer, instance, attributes), capture
        except Exception:
            _failed("an LM request's start")
            return None

    def _direct_lm_end(
        self, started: tuple[Any, bool], response: Any, exception: BaseException | None
    ) -> None:
        span, capture = started
        try:
            extra = None
            if response is not None and span.is_recording():
                extra = _response_attributes(response, capture)
            _finish(span, exception, extra)
        except Exception:
            _failed("an LM request's end")

    def _direct_fold(
        self,
        parent: _Frame,
        instance: Any,
        inputs: dict[str, Any],
        response: Any,
        exception: BaseException | None,
    ) -> None:
        try:
            _fold(parent, instance, inputs, response)
            if exception is not None and parent.folded is not None:
                parent.folded["dsx.lm.error.type"] = type(exception).__qualname__
        except Exception:
            _failed("an LM request's end")

    # -- the callback hooks: used when callbacks watch too ------------------------------------
    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        tracer = _tracer_for(settings.get("tracing"))
        if tracer is None:
            return
        self.spans[call_id] = _open_module(tracer, instance, inputs, call_id)

    def on_module_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        frame = self.spans.pop(call_id, None)
        if frame is not None:
            _close(frame, exception, _module_end_attributes(frame, outputs))

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        tracer = _tracer_for(settings.get("tracing"))
        if tracer is None:
            return
        parent = _current.get()
        if _folds_into(parent):
            assert parent is not None
            self.folded_lm[call_id] = (parent, instance, inputs)
            return
        capture = parent.capture if parent is not None else _capture_content()
        attributes = _request_attributes(instance, inputs, capture)
        attributes["dsx.call_id"] = call_id
        self.spans[call_id] = (_lm_span(tracer, instance, attributes), capture)

    def on_lm_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        response = _cb.raw_result()
        folded = self.folded_lm.pop(call_id, None)
        if folded is not None:
            parent, instance, inputs = folded
            self._direct_fold(parent, instance, inputs, response, exception)
            return
        entry = self.spans.pop(call_id, None)
        if entry is None:
            return
        span, capture = entry
        extra = None if response is None else _response_attributes(response, capture)
        _finish(span, exception, extra)

    # -- tools, sandbox executions and evaluations --------------------------------------------
    def _open_other(
        self,
        tracer: Any,
        kind: str,
        call_id: str,
        name: str,
        attributes: dict[str, Any],
        capture: bool,
    ) -> None:
        attributes["dsx.call_id"] = call_id
        attributes = {k: v for k, v in attributes.items() if v is not None}
        self.spans[call_id] = _open(tracer, kind, name, attributes, capture)

    def _close_other(
        self, call_id: str, exception: BaseException | None, attributes: dict[str, Any] | None
    ) -> None:
        frame = self.spans.pop(call_id, None)
        if frame is None:
            return
        if attributes:
            attributes = {k: v for k, v in attributes.items() if v is not None}
        _close(frame, exception, attributes)

    def on_tool_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        tracer = _tracer_for(settings.get("tracing"))
        if tracer is None:
            return
        name = str(getattr(instance, "name", "tool"))
        attributes: dict[str, Any] = {
            "dsx.span.kind": "tool",
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": name,
            "gen_ai.tool.type": "function",
            "gen_ai.tool.description": getattr(instance, "desc", None) or None,
        }
        capture = _capture_here()
        if capture:
            attributes["gen_ai.tool.call.arguments"] = _short(inputs.get("kwargs"))
        self._open_other(tracer, "tool", call_id, f"execute_tool {name}", attributes, capture)

    def on_tool_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        frame = self.spans.get(call_id)
        extra = None
        if outputs is not None and frame is not None and frame.capture:
            extra = {"gen_ai.tool.call.result": _short(outputs)}
        self._close_other(call_id, exception, extra)

    def on_interpreter_execute_start(
        self, call_id: str, instance: Any, inputs: dict[str, Any]
    ) -> None:
        tracer = _tracer_for(settings.get("tracing"))
        if tracer is None:
            return
        code = str(inputs.get("code") or "")
        attributes: dict[str, Any] = {
            "dsx.span.kind": "sandbox",
            "dsx.sandbox.type": type(instance).__name__,
            "dsx.sandbox.code_chars": len(code),
        }
        capture = _capture_here()
        if capture:
            attributes["dsx.sandbox.code"] = code[:_MAX_ATTR]
        self._open_other(tracer, "sandbox", call_id, "execute_code", attributes, capture)

    def on_interpreter_execute_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        frame = self.spans.get(call_id)
        extra: dict[str, Any] = {}
        if outputs is not None and frame is not None:
            extra = {
                "dsx.sandbox.ok": getattr(outputs, "ok", None),
                "dsx.sandbox.timed_out": getattr(outputs, "timed_out", None),
                "dsx.sandbox.tool_calls": len(getattr(outputs, "tool_calls", None) or ()),
            }
            error = getattr(outputs, "error", None)
            if error:
                extra["error.type"] = str(getattr(error, "type", None) or type(error).__name__)
            if frame.capture:
                extra["dsx.sandbox.stdout"] = str(getattr(outputs, "stdout", ""))[:_MAX_ATTR]
        self._close_other(call_id, exception, extra)

    def on_evaluate_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        tracer = _tracer_for(settings.get("tracing"))
        if tracer is None:
            return
        devset = inputs.get("devset")
        size = len(devset if devset is not None else getattr(instance, "devset", []))
        program = inputs.get("program")
        attributes = {
            "dsx.span.kind": "evaluate",
            "dsx.evaluate.examples": size,
            "dsx.module.type": type(program).__name__ if program is not None else None,
        }
        # it records no content itself; its programs inherit the switch
        capture = _capture_here()
        self._open_other(tracer, "evaluate", call_id, "evaluate", attributes, capture)

    def on_evaluate_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        extra = None
        score = getattr(outputs, "score", None)
        if isinstance(score, int | float):
            extra = {"dsx.evaluate.score": float(score)}
        self._close_other(call_id, exception, extra)


@contextlib.contextmanager
def span(name: str, attributes: dict[str, Any]) -> Iterator[Any]:
    """A span around a block that is not a call (an optimizer run, one of its trials),
    current while the block runs so that the program runs inside nest under it; nothing
    when tracing is off. Yields the span (``None`` when off) for attributes set at the end.
    """
    tracer = _tracer_for(settings.get("tracing"))
    if tracer is None:
        yield None
        return
    context, trace = _api()
    current = tracer.start_span(
        name, attributes={k: v for k, v in attributes.items() if v is not None}
    )
    token = context.attach(trace.set_span_in_context(current))
    try:
        yield current
    except BaseException as exc:
        current.set_attribute("error.type", type(exc).__qualname__)
        current.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)[:500]))
        raise
    finally:
        with contextlib.suppress(ValueError):
            context.detach(token)
        current.end()


_observer: TracingObserver | None = None


def observer() -> TracingObserver:
    """The one tracing observer of this process."""
    global _observer
    if _observer is None:
        _observer = TracingObserver()
    return _observer
