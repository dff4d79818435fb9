"""OpenTelemetry spans for programs, modules, predictors, LM requests, tools and evaluations.

Tracing is one observer on dsx's call hooks (:mod:`dsx.runtime.callbacks`), registered the
first time tracing is asked for: ``dsx.configure(tracing=True)`` (the global tracer
provider, or one built from the ``OTEL_*`` environment variables when the application set
none), ``tracing=<TracerProvider>``, or the environment alone (``OTEL_TRACES_EXPORTER`` or
an ``OTEL_EXPORTER_OTLP_*ENDPOINT`` set, ``OTEL_SDK_DISABLED`` not true). Each call
resolves ``dsx.settings.tracing`` again, so ``dsx.context(tracing=False)`` turns it off
for one task.

A span is made current while its call runs (OpenTelemetry's context is a context
variable), so children started in other asyncio tasks, in the Evaluate/Parallel engine or
in worker threads that copy the context nest under it. Attributes follow the GenAI
semantic conventions (``gen_ai.operation.name``, ``gen_ai.request.model``,
``gen_ai.usage.input_tokens``, ...). Prompts and replies are recorded only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` is true. ``opentelemetry`` is
imported on the first span, never by ``import dsx``.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from typing import Any

from dsx._extras import require
from dsx._version import __version__
from dsx.runtime.callbacks import active_call_id, raw_result
from dsx.runtime.settings import settings

__all__ = ["TracingObserver", "observer"]

_MAX_ATTR = 4000  # characters of a recorded prompt, reply or value

_FEATURE = "Tracing (dsx.configure(tracing=...) or the OTEL_* variables)"


def _capture_content() -> bool:
    value = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
    return value.strip().lower() in ("1", "true", "yes")


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
    return cached[1]


_tracers: dict[int, tuple[Any, Any]] = {}
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


class TracingObserver:
    """Opens a span per call; the callbacks machinery calls it like a callback."""

    def __init__(self) -> None:
        # call id -> (span, token, kind, whether prompts and values are recorded)
        self.spans: dict[str, tuple[Any, Any, str, bool]] = {}
        # compact traces (tracing_lm_spans=False): a predictor's call id -> the attributes
        # of its LM requests, and an LM request's call id -> its predictor's call id
        self.folded: dict[str, dict[str, Any]] = {}
        self.folded_lm: dict[str, str] = {}

    # -- the shared start/end ---------------------------------------------------------------
    def _start(
        self,
        tracer: Any,
        kind: str,
        call_id: str,
        name: str,
        attributes: dict[str, Any],
        capture: bool,
    ) -> None:
        context, trace = _api()
        attributes["dsx.call_id"] = call_id
        span = tracer.start_span(
            name,
            kind=trace.SpanKind.CLIENT if kind == "lm" else trace.SpanKind.INTERNAL,
            attributes={k: v for k, v in attributes.items() if v is not None},
        )
        # An LM request is a leaf: it need not be the current span (saves the attach).
        token = None if kind == "lm" else context.attach(trace.set_span_in_context(span))
        self.spans[call_id] = (span, token, kind, capture)

    def _end(
        self,
        call_id: str,
        exception: BaseException | None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        entry = self.spans.pop(call_id, None)
        if entry is None:
            return
        span, token = entry[0], entry[1]
        context, trace = _api()

        if token is not None:
            # a span ended in another context than it began in still ends
            with contextlib.suppress(ValueError):
                context.detach(token)
        if attributes and span.is_recording():
            span.set_attributes({k: v for k, v in attributes.items() if v is not None})
        if exception is not None:
            if isinstance(exception, Exception):
                span.record_exception(exception)
            span.set_attribute("error.type", type(exception).__qualname__)
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(exception)[:500]))
        span.end()

    # -- modules and predictors -------------------------------------------------------------
    def on_module_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        tracer = _tracer_for(settings.get("tracing"))
        if tracer is None:
            return
        cls = type(instance).__name__
        parent = self.spans.get(active_call_id() or "")
        if isinstance(instance, _predict_class()):
            kind, name = "predictor", f"predict {instance.signature.__name__}"
        elif parent is None or parent[2] == "evaluate":
            kind, name = "program", f"program {cls}"
        else:
            kind, name = "module", f"module {cls}"
        attributes: dict[str, Any] = {"dsx.span.kind": kind, "dsx.module.type": cls}
        if kind == "predictor":
            attributes["dsx.signature"] = instance.signature.signature
        if cls in ("ReAct", "CodeAct", "ProgramOfThought"):
            attributes["gen_ai.operation.name"] = "invoke_agent"
            attributes["gen_ai.agent.name"] = cls
        capture = _capture_content()
        if capture:
            attributes["dsx.inputs"] = _short(inputs.get("kwargs") or inputs)
        self._start(tracer, kind, call_id, name, attributes, capture)

    def on_module_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        entry = self.spans.get(call_id)
        if entry is None:
            return
        extra = self.folded.pop(call_id, None)
        if outputs is not None and entry[3]:
            extra = {**(extra or {}), "dsx.outputs": _short(outputs)}
        self._end(call_id, exception, extra)

    # -- LM requests ------------------------------------------------------------------------
    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        setting = settings.get("tracing")
        tracer = _tracer_for(setting)
        if tracer is None:
            return
        model = str(getattr(instance, "model", "") or "")
        params = {**getattr(instance, "kwargs", {}), **(inputs.get("kwargs") or {})}
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat"
            if getattr(instance, "model_type", "chat") == "chat"
            else "text_completion",
            "gen_ai.provider.name": _provider_of(model),
            "gen_ai.request.model": model,
        }
        for key, attr in (
            ("temperature", "gen_ai.request.temperature"),
            ("max_tokens", "gen_ai.request.max_tokens"),
            ("top_p", "gen_ai.request.top_p"),
            ("n", "gen_ai.request.choice.count"),
        ):
            value = params.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                attributes[attr] = value
        parent_id = active_call_id() or ""
        parent = self.spans.get(parent_id)
        capture = parent[3] if parent is not None else _capture_content()
        if capture:
            attributes["gen_ai.input.messages"] = _short(inputs.get("messages"))
        if (
            parent is not None
            and parent[2] == "predictor"
            and not settings.get("tracing_lm_spans", True)
        ):
            # Compact traces: the request's attributes go on the predictor's span, set when
            # it ends (one SDK span per predictor call instead of two).
            self.folded[parent_id] = {**self.folded.get(parent_id, {}), **attributes}
            self.folded_lm[call_id] = parent_id
            return
        attributes["dsx.span.kind"] = "lm"
        self._start(tracer, "lm", call_id, f"chat {model}", attributes, capture)

    def on_lm_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        parent_id = self.folded_lm.pop(call_id, None)
        entry = self.spans.get(parent_id if parent_id is not None else call_id)
        if entry is None:
            return
        response = raw_result()
        extra: dict[str, Any] = {}
        if response is not None:
            usage = getattr(response, "usage", None) or {}
            extra = {
                "gen_ai.response.model": getattr(response, "model", None) or None,
                "gen_ai.usage.input_tokens": usage.get("prompt_tokens"),
                "gen_ai.usage.output_tokens": usage.get("completion_tokens"),
                "dsx.cached": bool(getattr(response, "cached", False)),
                "dsx.cost_usd": getattr(response, "cost", None),
            }
            reasons = [r for r in getattr(response, "finish_reasons", None) or [] if r]
            if reasons:
                extra["gen_ai.response.finish_reasons"] = reasons
            if entry[3]:
                extra["gen_ai.output.messages"] = _short(getattr(response, "outputs", None))
        if parent_id is not None:
            folded = self.folded.get(parent_id)
            if folded is not None:
                _fold_response(folded, extra, exception)
            return
        self._end(call_id, exception, extra)

    # -- tools and evaluations --------------------------------------------------------------
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
        capture = _capture_content()
        if capture:
            attributes["gen_ai.tool.call.arguments"] = _short(inputs.get("kwargs"))
        self._start(tracer, "tool", call_id, f"execute_tool {name}", attributes, capture)

    def on_tool_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        entry = self.spans.get(call_id)
        extra = None
        if outputs is not None and entry is not None and entry[3]:
            extra = {"gen_ai.tool.call.result": _short(outputs)}
        self._end(call_id, exception, extra)

    # -- sandbox executions (code agents) ----------------------------------------------------
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
        capture = _capture_content()
        if capture:
            attributes["dsx.sandbox.code"] = code[:_MAX_ATTR]
        self._start(tracer, "sandbox", call_id, "execute_code", attributes, capture)

    def on_interpreter_execute_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        entry = self.spans.get(call_id)
        extra: dict[str, Any] = {}
        if outputs is not None and entry is not None:
            extra = {
                "dsx.sandbox.ok": getattr(outputs, "ok", None),
                "dsx.sandbox.timed_out": getattr(outputs, "timed_out", None),
                "dsx.sandbox.tool_calls": len(getattr(outputs, "tool_calls", None) or ()),
            }
            error = getattr(outputs, "error", None)
            if error:
                extra["error.type"] = str(getattr(error, "type", None) or type(error).__name__)
            if entry[3]:
                extra["dsx.sandbox.stdout"] = str(getattr(outputs, "stdout", ""))[:_MAX_ATTR]
        self._end(call_id, exception, extra)

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
        self._start(tracer, "evaluate", call_id, "evaluate", attributes, False)

    def on_evaluate_end(
        self, call_id: str, outputs: Any | None, exception: BaseException | None = None
    ) -> None:
        extra = None
        score = getattr(outputs, "score", None)
        if isinstance(score, int | float):
            extra = {"dsx.evaluate.score": float(score)}
        self._end(call_id, exception, extra)


def _fold_response(
    folded: dict[str, Any], response: dict[str, Any], exception: BaseException | None
) -> None:
    """Add one LM request's results to its predictor's attributes (compact traces): token
    counts and cost add up over the predictor's requests; the rest is the last request's."""
    for key in ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "dsx.cost_usd"):
        value = response.pop(key, None)
        if isinstance(value, int | float):
            folded[key] = (folded.get(key) or 0) + value
    folded.update(response)
    folded["dsx.lm.requests"] = folded.get("dsx.lm.requests", 0) + 1
    if exception is not None:
        folded["dsx.lm.error.type"] = type(exception).__qualname__


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
