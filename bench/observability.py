"""Callbacks, tracing and streaming: what they cost and what streaming buys (issue 20).

Two measurements, printed as Markdown and written to ``bench/results/observability.json``:

* Overhead per ``Predict`` call (µs of this process's CPU time, ``time.process_time``, so
  that other processes on a shared machine count less; median and min of ``--reps`` loops
  of ``--calls`` calls; the scripted ``DummyLM``, as in ``bench/run.py``) in these
  configurations: nothing configured;
  one no-op callback (``dsx.configure(callbacks=[dsx.BaseCallback()])``); OpenTelemetry on
  (an SDK ``TracerProvider`` with a ``BatchSpanProcessor`` and an exporter that drops
  spans, so the SDK's own work is counted but no I/O), with a predictor and an LM span per
  call or, compact (``tracing_lm_spans=False``), the LM request on the predictor's span;
  the same two with OpenTelemetry's ``NoOpTracer`` (dsx's own work without the SDK's); the
  SDK floor (tracing off, and the compact span's name and eleven attributes started and
  ended by hand after each call: the SDK's cost with no dsx code); and,
  with ``--baseline TREE``, the
  same loop on another dsx checkout (``TREE/src``) with nothing configured, run in its own
  interpreter, for the before/after of the call hooks. Each configuration runs in a fresh
  interpreter, interleaved ``--rounds`` times.
* Time to first streamed chunk vs time to the full reply, against the local
  OpenAI-compatible server streaming one word per SSE chunk every ``--chunk-interval``
  seconds (a slow model), for ``dsx.streamify`` and DSPy 3.4.1's ``dspy.streamify`` on the
  same reply (each in its own adapter's layout), ``--stream-reps`` runs each, no cache.

Run it in the bench venv (``make bench`` builds ``.venv-bench`` with dspy==3.4.1):
``.venv-bench/bin/python bench/observability.py [--baseline /path/to/old/checkout]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "observability.json"
QUESTION = "What is the capital of France?"

_OVERHEAD = r"""
import json, sys, time
mode, calls, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
import dsx
from dsx.testing import DummyLM
if mode == "callbacks":
    dsx.configure(callbacks=[dsx.BaseCallback()])
elif mode in ("otel", "otel-compact", "sdk-floor"):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    class Drop(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    if mode == "sdk-floor":  # tracing stays off; the loop makes the span itself
        tracer = provider.get_tracer("floor")
    else:
        dsx.configure(tracing=provider, tracing_lm_spans=mode == "otel")
elif mode in ("otel-noop", "otel-noop-compact"):
    from opentelemetry.trace import NoOpTracer
    dsx.configure(tracing=NoOpTracer(), tracing_lm_spans=mode == "otel-noop")
predict = dsx.Predict("question -> answer")
FLOOR = {
    "dsx.span.kind": "predictor", "dsx.module.type": "Predict",
    "dsx.signature": "question -> answer", "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "dummy", "gen_ai.request.model": "dummy", "dsx.cached": False,
    "gen_ai.response.model": "dummy", "gen_ai.usage.input_tokens": 88,
    "gen_ai.usage.output_tokens": 8, "dsx.lm.requests": 1,
}
out = []
for rep in range(reps + 1):
    dsx.configure(lm=DummyLM([{"answer": "Paris"}] * calls))
    start = time.process_time()
    if mode == "sdk-floor":
        # the compact span's name and attributes, made by hand after an untraced call:
        # what the SDK costs with no dsx code involved
        for _ in range(calls):
            predict(question="What is the capital of France?")
            tracer.start_span("predict StringSignature", attributes=FLOOR).end()
    else:
        for _ in range(calls):
            predict(question="What is the capital of France?")
    elapsed = (time.process_time() - start) / calls
    if rep:  # the first loop warms up
        out.append(elapsed)
print(json.dumps(out))
"""


def measure_overhead(args: argparse.Namespace) -> dict[str, Any]:
    modes: list[tuple[str, str, dict[str, str]]] = [
        ("off", "off", {}),
        ("callbacks", "callbacks", {}),
        ("otel", "otel", {}),
        ("otel, compact (tracing_lm_spans=False)", "otel-compact", {}),
        ("otel API, no-op tracer (dsx's own work)", "otel-noop", {}),
        ("otel API, no-op tracer, compact", "otel-noop-compact", {}),
        ("SDK floor: the compact span made by hand after an untraced call", "sdk-floor", {}),
    ]
    if args.baseline:
        env = {"PYTHONPATH": str(Path(args.baseline) / "src")}
        modes.insert(0, ("baseline (before the hooks)", "off", env))
    samples: dict[str, list[float]] = {label: [] for label, _, _ in modes}
    for _ in range(args.rounds):
        for label, mode, extra in modes:
            env = {**os.environ, **extra}
            out = subprocess.run(
                [sys.executable, "-c", _OVERHEAD, mode, str(args.calls), str(args.reps)],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            )
            samples[label] += json.loads(out.stdout)
    return {
        label: {"median_us": statistics.median(v) * 1e6, "min_us": min(v) * 1e6}
        for label, v in samples.items()
    }


# -- streaming ---------------------------------------------------------------------------

_WORDS = (
    "Paris is the capital and largest city of France, on the Seine, and has been the "
    "country's political, economic and cultural centre for most of its recorded history "
    "since the early Middle Ages"
)


def _reply(body: dict[str, Any]) -> str:
    system = str(body["messages"][0]["content"])
    if "[[ ## " in system:  # DSPy's ChatAdapter layout
        return f"[[ ## answer ## ]]\n{_WORDS}\n\n[[ ## completed ## ]]"
    return f"<<< answer >>>\n{_WORDS}\n\n<<< end >>>"


async def _time_dsx(api_base: str) -> tuple[float, float]:
    import dsx
    from dsx.streaming import StreamListener, StreamResponse

    lm = dsx.LM("openai/bench", api_base=api_base, api_key="x", cache=False)
    program = dsx.Predict("question -> answer", lm=lm)
    stream = dsx.streamify(program, stream_listeners=[StreamListener("answer")])
    start = time.perf_counter()
    first = None
    async for item in stream(question=QUESTION):
        if first is None and isinstance(item, StreamResponse) and item.chunk:
            first = time.perf_counter() - start
    return first or float("nan"), time.perf_counter() - start


async def _time_dspy(api_base: str) -> tuple[float, float]:
    import dspy
    from dspy.streaming import StreamListener, StreamResponse

    lm = dspy.LM("openai/bench", api_base=api_base, api_key="x", cache=False)
    program = dspy.Predict("question -> answer")
    program.set_lm(lm)
    stream = dspy.streamify(program, stream_listeners=[StreamListener("answer")])
    start = time.perf_counter()
    first = None
    with dspy.context(lm=lm):
        async for item in stream(question=QUESTION):
            if first is None and isinstance(item, StreamResponse) and item.chunk:
                first = time.perf_counter() - start
    return first or float("nan"), time.perf_counter() - start


def measure_streaming(args: argparse.Namespace) -> dict[str, Any]:
    import asyncio

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from dsx.testing import OpenAIServer

    out: dict[str, Any] = {}
    with OpenAIServer(_reply, chunk_interval=args.chunk_interval) as srv:
        for name, fn in (("dsx", _time_dsx), ("dspy", _time_dspy)):
            asyncio.run(fn(srv.api_base))  # warm-up: imports, connections
            firsts, fulls = [], []
            for _ in range(args.stream_reps):
                first, full = asyncio.run(fn(srv.api_base))
                firsts.append(first)
                fulls.append(full)
            out[name] = {
                "first_chunk_ms": statistics.median(firsts) * 1e3,
                "full_reply_ms": statistics.median(fulls) * 1e3,
            }
    out["words"] = len(_WORDS.split())
    out["chunk_interval_s"] = args.chunk_interval
    return out


def report(results: dict[str, Any]) -> str:
    lines = ["| Predict call, µs | median | min |", "|---|---:|---:|"]
    for label, row in results["overhead"].items():
        lines.append(f"| {label} | {row['median_us']:.1f} | {row['min_us']:.1f} |")
    s = results["streaming"]
    lines += [
        "",
        f"Streaming {s['words']} words, one SSE chunk per word every "
        f"{s['chunk_interval_s'] * 1000:.0f} ms (local server):",
        "",
        "| | first chunk, ms | full reply, ms |",
        "|---|---:|---:|",
    ]
    for name in ("dsx", "dspy"):
        row = s[name]
        lines.append(f"| {name} | {row['first_chunk_ms']:.1f} | {row['full_reply_ms']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", metavar="TREE", help="another dsx checkout to compare")
    parser.add_argument("--chunk-interval", type=float, default=0.02)
    parser.add_argument("--stream-reps", type=int, default=5)
    parser.add_argument("--skip-streaming", action="store_true")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"overhead": measure_overhead(args)}
    if not args.skip_streaming:
        results["streaming"] = measure_streaming(args)
        print(report(results))
    else:
        print(json.dumps(results["overhead"], indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
