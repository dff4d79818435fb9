"""OpenTelemetry spans: trees, GenAI attributes, concurrency, threads, the OTLP exporter."""

from __future__ import annotations

import asyncio
import http.server
import os
import subprocess
import sys
import textwrap
import threading
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode

import dsx
from dsx.testing import DummyLM, FunctionLM


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    dsx.configure(tracing=provider)
    return exporter


def _by_id(spans: list[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in spans}


def _parent(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    return _by_id(spans).get(span.parent.span_id)


def _kind(span: ReadableSpan) -> str:
    return str(span.attributes["dsx.span.kind"])


def test_chain_of_thought_makes_a_program_predictor_lm_tree(exporter):
    dsx.configure(lm=DummyLM([{"reasoning": "r", "answer": "42"}], model="openai/gpt-x"))
    dsx.ChainOfThought("question -> answer", temperature=0.3)(question="q")
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == [
        "chat openai/gpt-x",
        "predict StringSignature",
        "program ChainOfThought",
    ]
    lm, predictor, program = spans
    assert _parent(lm, spans) is predictor and _parent(predictor, spans) is program
    assert program.parent is None
    assert lm.attributes["gen_ai.operation.name"] == "chat"
    assert lm.attributes["gen_ai.request.model"] == "openai/gpt-x"
    assert lm.attributes["gen_ai.provider.name"] == "openai"
    assert lm.attributes["gen_ai.request.temperature"] == 0.3
    assert lm.attributes["gen_ai.usage.input_tokens"] > 0
    assert lm.attributes["gen_ai.usage.output_tokens"] > 0
    assert lm.attributes["dsx.cached"] is False
    assert predictor.attributes["dsx.signature"] == "question -> reasoning, answer"
    assert "gen_ai.input.messages" not in lm.attributes  # content is opt-in
    assert all(s.status.status_code is StatusCode.UNSET for s in spans)


def test_compact_traces_put_the_lm_request_on_the_predictor_span(exporter, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    calls = iter(["not the format", '{"reasoning": "r", "answer": "42"}'])
    lm = FunctionLM(lambda messages: next(calls), model="openai/gpt-x")
    with dsx.context(lm=lm, tracing_lm_spans=False):
        dsx.ChainOfThought("question -> answer", temperature=0.3)(question="q")
    spans = exporter.get_finished_spans()
    # one span per predictor call: no "chat ..." child
    assert [s.name for s in spans] == ["predict StringSignature", "program ChainOfThought"]
    predictor = spans[0]
    attrs = predictor.attributes
    assert attrs["dsx.span.kind"] == "predictor"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "openai/gpt-x"
    assert attrs["gen_ai.request.temperature"] == 0.3
    # the adapter's fallback made a second request: tokens add up over both
    assert attrs["dsx.lm.requests"] == 2
    assert attrs["gen_ai.usage.input_tokens"] > 0
    assert "q" in attrs["gen_ai.input.messages"] and "42" in attrs["gen_ai.output.messages"]
    # outside a predictor (a direct LM call) the request keeps its own span
    exporter.clear()
    with dsx.context(tracing_lm_spans=False):
        FunctionLM(lambda messages: "hi", model="openai/gpt-x")("hello")
    assert [s.name for s in exporter.get_finished_spans()] == ["chat openai/gpt-x"]


def test_content_is_recorded_when_the_environment_opts_in(exporter, monkeypatch):
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    dsx.configure(lm=DummyLM([{"answer": "Paris"}]))
    dsx.Predict("question -> answer")(question="capital of France?")
    lm, predictor = exporter.get_finished_spans()
    assert "capital of France?" in lm.attributes["gen_ai.input.messages"]
    assert "Paris" in lm.attributes["gen_ai.output.messages"]
    assert "Paris" in predictor.attributes["dsx.outputs"]
    # nested calls, and programs under Evaluate, record content too
    exporter.clear()
    dsx.configure(lm=DummyLM([{"answer": "Paris"}] * 4))
    dev = [dsx.Example(question="capital?", answer="Paris").with_inputs("question")]
    dsx.Evaluate(devset=dev, metric=dsx.exact_match(), display_progress=False)(
        dsx.ChainOfThought("question -> answer")
    )
    spans = exporter.get_finished_spans()
    assert {_kind(s) for s in spans} == {"evaluate", "program", "predictor", "lm"}
    for span in spans:
        if _kind(span) in ("program", "predictor"):
            assert "capital?" in span.attributes["dsx.inputs"]
        if _kind(span) == "lm":
            assert "capital?" in span.attributes["gen_ai.input.messages"]


def test_react_has_agent_and_tool_spans(exporter):
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    dsx.configure(
        lm=DummyLM(
            [
                {"next_thought": "t", "next_tool_name": "add", "next_tool_args": {"a": 1, "b": 2}},
                {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}},
                {"reasoning": "r", "answer": "3"},
            ]
        )
    )
    dsx.ReAct("question -> answer", tools=[add])(question="1+2?")
    spans = exporter.get_finished_spans()
    agent = next(s for s in spans if _kind(s) == "program")
    assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"
    (tool,) = [s for s in spans if _kind(s) == "tool"]
    assert tool.name == "execute_tool add"
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "add"
    assert _parent(tool, spans) is agent
    assert len([s for s in spans if _kind(s) == "lm"]) == 3


def test_a_failure_marks_the_spans_and_keeps_the_error(exporter):
    def broken(messages: Any) -> str:
        raise RuntimeError("provider down")

    dsx.configure(lm=FunctionLM(broken))
    with pytest.raises(RuntimeError):
        dsx.ChainOfThought("question -> answer")(question="q")
    spans = exporter.get_finished_spans()
    assert [s.status.status_code for s in spans] == [StatusCode.ERROR] * 3
    assert spans[0].attributes["error.type"] == "RuntimeError"
    assert any(e.name == "exception" for e in spans[0].events)


def _check_trees(spans: list[ReadableSpan], roots: int, *, root_kind: str = "program") -> None:
    programs = [s for s in spans if _kind(s) == root_kind]
    assert len(programs) == roots
    for lm in (s for s in spans if _kind(s) == "lm"):
        predictor = _parent(lm, spans)
        assert predictor is not None and _kind(predictor) == "predictor"
        program = _parent(predictor, spans)
        assert program is not None and _kind(program) == "program"
        assert lm.context.trace_id == program.context.trace_id


def test_concurrent_tasks_each_get_their_own_tree(exporter):
    dsx.configure(lm=DummyLM([{"reasoning": "r", "answer": "a"}] * 20))
    cot = dsx.ChainOfThought("question -> answer")

    async def main() -> None:
        await asyncio.gather(*(cot.acall(question=f"q{i}") for i in range(8)))

    asyncio.run(main())
    spans = exporter.get_finished_spans()
    _check_trees(spans, 8)
    assert len({s.context.trace_id for s in spans}) == 8


def test_threads_and_parallel_keep_the_context(exporter):
    dsx.configure(lm=DummyLM([{"reasoning": "r", "answer": "a"}] * 40))
    cot = dsx.ChainOfThought("question -> answer")
    cot.batch([{"question": f"q{i}"} for i in range(6)], num_threads=3)
    _check_trees(exporter.get_finished_spans(), 6)
    exporter.clear()
    dsx.Parallel(num_threads=3)([(cot, {"question": f"p{i}"}) for i in range(4)])
    _check_trees(exporter.get_finished_spans(), 4)


def test_evaluate_is_the_root_of_its_examples(exporter):
    dsx.configure(lm=DummyLM([{"answer": "42"}] * 10))
    dev = [dsx.Example(question=f"q{i}", answer="42").with_inputs("question") for i in range(4)]
    program = dsx.Predict("question -> answer")

    class Wrapper(dsx.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = program

        def forward(self, question: str) -> Any:
            return self.inner(question=question)

    dsx.Evaluate(devset=dev, metric=dsx.exact_match(), display_progress=False, num_threads=2)(
        Wrapper()
    )
    spans = exporter.get_finished_spans()
    (evaluate,) = [s for s in spans if _kind(s) == "evaluate"]
    assert evaluate.attributes["dsx.evaluate.score"] == 100.0
    assert evaluate.attributes["dsx.evaluate.examples"] == 4
    programs = [s for s in spans if _kind(s) == "program"]
    assert len(programs) == 4
    assert all(_parent(p, spans) is evaluate for p in programs)
    _check_trees(spans, 4)


def test_an_application_span_is_the_parent_and_context_can_turn_tracing_off(exporter):
    dsx.configure(lm=DummyLM([{"answer": "a"}] * 5))
    provider = dsx.settings.tracing
    with provider.get_tracer("app").start_as_current_span("request"):
        dsx.Predict("question -> answer")(question="q")
    spans = exporter.get_finished_spans()
    predictor = next(s for s in spans if _kind(s) == "predictor")
    assert _parent(predictor, spans).name == "request"
    exporter.clear()
    with dsx.context(tracing=False):
        dsx.Predict("question -> answer")(question="q")
    assert exporter.get_finished_spans() == ()


# -- the real exporter, enabled by the environment alone -------------------------------------


class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: list[bytes] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        type(self).bodies.append(self.rfile.read(length))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_otel_environment_variables_export_over_otlp_http():
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    _Receiver.bodies = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
        env.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{server.server_address[1]}",
            OTEL_SERVICE_NAME="qa-service",
        )
        code = textwrap.dedent(
            """
            import dsx
            from dsx.testing import DummyLM
            dsx.configure(lm=DummyLM([{"answer": "Paris"}], model="openai/gpt-x"))
            print(dsx.Predict("question -> answer")(question="capital?").answer)
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "Paris"
    finally:
        server.shutdown()
    names, services = [], set()
    for body in _Receiver.bodies:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            for attr in resource_spans.resource.attributes:
                if attr.key == "service.name":
                    services.add(attr.value.string_value)
            for scope in resource_spans.scope_spans:
                names += [span.name for span in scope.spans]
    assert sorted(names) == ["chat openai/gpt-x", "predict StringSignature"]
    assert services == {"qa-service"}


def test_code_agents_sandbox_executions_are_spans(exporter):
    from dsx.testing.fake_sandbox import FakeSandbox, fake_result

    def sandbox(**options: Any) -> FakeSandbox:
        return FakeSandbox(
            [
                fake_result(error="ZeroDivisionError: division by zero"),
                fake_result(final={"answer": 7}),
            ],
            **options,
        )

    lm = DummyLM(
        [
            {"reasoning": "r", "code": "1/0"},
            {"reasoning": "fix", "code": "SUBMIT(answer=7)"},
        ]
    )
    dsx.configure(lm=lm)
    assert (
        dsx.ProgramOfThought("question -> answer: int", sandbox=sandbox)(question="q").answer == 7
    )
    spans = exporter.get_finished_spans()
    runs = [s for s in spans if _kind(s) == "sandbox"]
    assert [s.name for s in runs] == ["execute_code", "execute_code"]
    assert [s.attributes["dsx.sandbox.ok"] for s in runs] == [False, True]
    assert runs[0].attributes["dsx.sandbox.code_chars"] == 3
    assert all(_kind(_parent(s, spans)) == "program" for s in runs)


def test_an_optimizer_run_and_its_trials_are_spans_over_the_program_runs(exporter):
    from dsx.teleprompt import COPRO

    def answer(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        if "proposed_instruction" in messages[0]["content"]:
            n = int(kwargs.get("n") or 1)
            out = [{"proposed_instruction": f"Say it in uppercase ({i})."} for i in range(n)]
            return out if n > 1 else out[0]
        word = messages[-1]["content"].split("<<< text >>>\n", 1)[1].split("\n", 1)[0]
        return {"answer": word.upper()}

    dsx.configure(lm=FunctionLM(answer, model="openai/gpt-x"))
    data = [dsx.Example(text=w, answer=w.upper()).with_inputs("text") for w in ("a", "b", "c")]
    opt = COPRO(
        metric=lambda ex, pred, trace=None: ex.answer == pred.answer,
        breadth=2,
        depth=1,
        display_progress=False,
    )
    opt.compile(dsx.Predict("text -> answer"), trainset=data)
    spans = exporter.get_finished_spans()
    [run] = [s for s in spans if _kind(s) == "optimize"]
    assert run.name == "optimize COPRO" and run.attributes["dsx.optimizer.best_score"] == 100.0
    trials = [s for s in spans if _kind(s) == "optimizer.trial"]
    assert trials and all(_parent(t, spans) is run for t in trials)
    assert all(
        t.attributes["dsx.trial.runs"] == t.attributes["dsx.trial.completed"] for t in trials
    )
    programs = [s for s in spans if s.name.startswith("predict") and _parent(s, spans) in trials]
    assert len(programs) == sum(int(t.attributes["dsx.trial.runs"]) for t in trials)


# -- the direct path (tracing alone) and the callbacks' path make the same spans -------------


def _tool_program() -> Any:
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    return dsx.ReAct("question -> answer", tools=[add])


_REACT_REPLIES = [
    {"next_thought": "t", "next_tool_name": "add", "next_tool_args": {"a": 1, "b": 2}},
    {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}},
    {"reasoning": "r", "answer": "3"},
]


def _run_scenario(name: str) -> None:
    if name in ("cot", "cot-compact", "cot-async", "cot-async-compact"):
        calls = iter(["not the format", '{"reasoning": "r", "answer": "42"}'])
        lm = FunctionLM(lambda messages: next(calls), model="openai/gpt-x")
        cot = dsx.ChainOfThought("question -> answer", temperature=0.3)
        with dsx.context(lm=lm, tracing_lm_spans="compact" not in name):
            if "async" in name:
                asyncio.run(cot.acall(question="q"))
            else:
                cot(question="q")
    elif name in ("failure", "failure-compact", "failure-async"):

        def broken(messages: Any) -> str:
            raise RuntimeError("provider down")

        cot = dsx.ChainOfThought("question -> answer")
        with (
            dsx.context(lm=FunctionLM(broken), tracing_lm_spans="compact" not in name),
            pytest.raises(RuntimeError),
        ):
            if "async" in name:
                asyncio.run(cot.acall(question="q"))
            else:
                cot(question="q")
    else:  # react: tool spans go through the callbacks' hooks either way
        with dsx.context(lm=DummyLM(_REACT_REPLIES)):
            _tool_program()(question="1+2?")


def _shape(spans: tuple[ReadableSpan, ...]) -> list[tuple[Any, ...]]:
    """Each span's name, kind, parent's name, status and attributes, without the call id."""
    out = []
    for span in spans:
        parent = _parent(span, list(spans))
        attrs = {k: v for k, v in (span.attributes or {}).items() if k != "dsx.call_id"}
        out.append(
            (
                span.name,
                span.kind,
                parent.name if parent is not None else None,
                span.status.status_code,
                sorted((k, str(v)) for k, v in attrs.items()),
                [e.name for e in span.events],
            )
        )
    return out


@pytest.mark.parametrize(
    "scenario",
    [
        "cot",
        "cot-compact",
        "cot-async",
        "cot-async-compact",
        "failure",
        "failure-compact",
        "failure-async",
        "react",
    ],
)
def test_tracing_alone_makes_the_same_spans_as_with_a_callback(exporter, scenario):
    # Tracing alone runs calls through the observer directly; with a callback watching
    # too, it goes through the hooks. Both must make the same trees and attributes.
    _run_scenario(scenario)
    direct = exporter.get_finished_spans()
    exporter.clear()
    with dsx.context(callbacks=[dsx.BaseCallback()]):
        _run_scenario(scenario)
    hooked = exporter.get_finished_spans()
    assert direct and _shape(direct) == _shape(hooked)
    # the two runs did take the two paths: the call id names the callbacks' call
    assert all("dsx.call_id" in s.attributes for s in hooked)
    assert not any(
        "dsx.call_id" in s.attributes for s in direct if _kind(s) in ("program", "predictor")
    )


def test_a_failing_tracer_is_logged_and_never_breaks_the_program(caplog):
    class Broken:
        def start_span(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("tracer down")

    dsx.configure(lm=DummyLM([{"answer": "a"}] * 4), tracing=Broken())
    assert dsx.Predict("question -> answer")(question="q").answer == "a"
    assert asyncio.run(dsx.Predict("question -> answer").acall(question="q")).answer == "a"
    assert "tracer down" in caplog.text
    with dsx.context(callbacks=[dsx.BaseCallback()]):  # the callbacks' path logs too
        assert dsx.Predict("question -> answer")(question="q").answer == "a"


def test_tracing_alone_leaves_the_adapter_hooks_off_until_a_callback_comes(exporter, monkeypatch):
    from dsx.runtime import callbacks

    monkeypatch.setattr(callbacks, "adapter_hooks", False)
    dsx.configure(lm=DummyLM([{"answer": "a"}] * 2))
    dsx.Predict("question -> answer")(question="q")
    assert callbacks.adapter_hooks is False
    assert [s.name for s in exporter.get_finished_spans()] == [
        "chat dummy",
        "predict StringSignature",
    ]

    class Formats(dsx.BaseCallback):
        seen: list[str] = []

        def on_adapter_format_start(self, call_id: str, instance: Any, inputs: Any) -> None:
            self.seen.append(call_id)

    with dsx.context(callbacks=[Formats()]):
        dsx.Predict("question -> answer")(question="q")
    assert len(Formats.seen) == 1


@pytest.mark.parametrize("lm_spans", [True, False])
def test_calls_the_sampler_drops_make_no_spans_and_run_as_usual(lm_spans, caplog):
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    dsx.configure(
        lm=DummyLM([{"reasoning": "r", "answer": "a"}] * 4),
        tracing=provider,
        tracing_lm_spans=lm_spans,
    )
    assert dsx.ChainOfThought("question -> answer")(question="q").answer == "a"
    assert asyncio.run(dsx.ChainOfThought("question -> answer").acall(question="q")).answer
    assert exporter.get_finished_spans() == ()
    assert "tracing failed" not in caplog.text
