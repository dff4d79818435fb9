"""Evaluate throughput: dsx.Evaluate, DSPy 3.4.1's Evaluate and a bare HTTP client, in one run.

    .venv-bench/bin/python bench/evaluate.py                 # about 2 minutes
    .venv-bench/bin/python bench/evaluate.py --help

Two parts, each workload in its own fresh interpreter:

* **HTTP**: ``--examples`` examples (2,000) scored with an exact-match metric by a
  ``Predict("question -> answer")`` program whose LM is served by
  ``dsx.testing.OpenAIServer`` with ``--latency`` (50 ms) — in its own process, so client
  and server each get a core. At each ``--concurrency`` (16, 64, 256): ``dsx.Evaluate``
  (``num_threads=C``) over ``dsx.LM(cache=False)``; ``dspy.Evaluate`` (``num_threads=C``)
  over ``dspy.LM(cache=False)``; and a bare ``aiohttp`` client posting the same number of
  chat requests under an ``asyncio.Semaphore(C)`` (no framework at all). Reported: seconds,
  calls/s, and the ratio to the ideal time ``N x latency / C``. One untimed round of ``C``
  calls first opens the connections (and imports LiteLLM).
* **scripted**: the same evaluation with each framework's in-process ``DummyLM`` (no
  network): examples/s, i.e. the framework's own cost per evaluated example.

Results go to stdout as a Markdown table and to ``bench/results/evaluate.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_ENV, RESULTS_DIR, machine_info, run_json  # not a package: sys.path

MODEL = "dsx-test"


def serve(latency: float) -> None:
    """The server process: answer each framework in the format its chat adapter parses."""
    from dsx.testing import format_answer
    from dsx.testing.server import OpenAIServer

    dsx_reply = format_answer({"answer": "Paris"})
    dspy_reply = "[[ ## answer ## ]]\nParis\n\n[[ ## completed ## ]]"

    def responder(body: dict[str, Any]) -> str:
        text = "".join(str(m.get("content", "")) for m in body.get("messages") or ())
        return dspy_reply if "[[ ## " in text else dsx_reply if "<<< " in text else "Paris"

    server = OpenAIServer(responder, latency=latency).start()
    print(server.api_base, flush=True)
    while True:  # forget recorded requests, or the server slows down as they pile up
        time.sleep(0.5)
        server.clear_requests()


def _questions(n: int, offset: int = 0) -> list[str]:
    return [f"What is the capital of France? (#{offset + i})" for i in range(n)]


def worker(args: argparse.Namespace) -> dict[str, Any]:
    n, c = args.examples, args.concurrency
    if args.worker == "bare":
        return asyncio.run(_bare(args))
    if args.worker.startswith("dsx"):
        import dsx
        from dsx.runtime.evaluate import Evaluate
        from dsx.runtime.metrics import exact_match
        from dsx.testing import DummyLM

        if args.worker == "dsx-scripted":
            lm: Any = DummyLM([{"answer": "Paris"}] * (n + c + 10))
        else:
            lm = dsx.LM(f"openai/{MODEL}", api_base=args.api_base, api_key="x", cache=False)
        program = dsx.Predict("question -> answer", lm=lm)

        def dev(k: int, offset: int) -> list[Any]:
            return [
                dsx.Example(question=q, answer="Paris").with_inputs("question")
                for q in _questions(k, offset)
            ]

        evaluate = Evaluate(
            devset=dev(n, c), metric=exact_match(), num_threads=c, display_progress=False
        )
        evaluate(program, devset=dev(c, 0))  # warm-up: connections, imports
        if args.worker == "dsx-gather":
            # The same calls without Evaluate: what the LM client alone manages.
            async def gather() -> float:
                sem = asyncio.Semaphore(c)

                async def one(q: str) -> Any:
                    async with sem:
                        return await program.acall(question=q)

                t0 = time.perf_counter()
                preds = await asyncio.gather(*(one(q) for q in _questions(n, c)))
                assert all(p.answer == "Paris" for p in preds)
                return time.perf_counter() - t0

            seconds = asyncio.run(gather())
            return {"seconds": seconds, "calls_per_s": n / seconds}
        t0 = time.perf_counter()
        result = evaluate(program)
        seconds = time.perf_counter() - t0
        assert result.score == 100.0, result
    else:
        import dspy
        from dspy.utils.dummies import DummyLM as DspyDummy

        if args.worker == "dspy-scripted":
            lm = DspyDummy([{"answer": "Paris"}] * (n + c + 10))
        else:
            lm = dspy.LM(
                f"openai/{MODEL}", api_base=args.api_base, api_key="x", cache=False, num_retries=0
            )
        dspy.configure(lm=lm)
        program = dspy.Predict("question -> answer")

        def dev(k: int, offset: int) -> list[Any]:
            return [
                dspy.Example(question=q, answer="Paris").with_inputs("question")
                for q in _questions(k, offset)
            ]

        def metric(example: Any, pred: Any, trace: Any = None) -> bool:
            return bool(example.answer == pred.answer)

        dspy.Evaluate(devset=dev(c, 0), metric=metric, num_threads=c, display_progress=False)(
            program
        )
        evaluate = dspy.Evaluate(
            devset=dev(n, c), metric=metric, num_threads=c, display_progress=False
        )
        t0 = time.perf_counter()
        result = evaluate(program)
        seconds = time.perf_counter() - t0
        assert result.score == 100.0, result
    return {"seconds": seconds, "calls_per_s": n / seconds}


async def _bare(args: argparse.Namespace) -> dict[str, Any]:
    import aiohttp

    url = f"{args.api_base}/chat/completions"
    headers = {"Authorization": "Bearer x", "Content-Type": "application/json"}
    sem = asyncio.Semaphore(args.concurrency)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(question: str) -> str:
            body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": question}]})
            async with sem, session.post(url, data=body, headers=headers) as resp:
                doc = await resp.json()
            return str(doc["choices"][0]["message"]["content"])

        await asyncio.gather(*(one(q) for q in _questions(args.concurrency)))
        t0 = time.perf_counter()
        await asyncio.gather(*(one(q) for q in _questions(args.examples, args.concurrency)))
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "calls_per_s": args.examples / seconds}


def _start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import evaluate; evaluate.serve({latency})"
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=BENCH_ENV, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--skip-dspy", action="store_true")
    parser.add_argument(
        "--with-gather",
        action="store_true",
        help="also time the dsx calls without Evaluate (asyncio.gather under a semaphore)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--api-base", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.concurrency = args.concurrency[0]
        print(json.dumps(worker(args)))
        return 0

    def run(name: str, c: int, api_base: str = "") -> dict[str, Any]:
        cmd = [
            __file__,
            "--worker",
            name,
            "--examples",
            str(args.examples),
            "--concurrency",
            str(c),
            "--api-base",
            api_base,
        ]
        return dict(run_json(cmd, timeout=900))

    clients = ["bare", "dsx"] + (["dsx-gather"] if args.with_gather else [])
    clients += [] if args.skip_dspy else ["dspy"]
    results: dict[str, Any] = {
        "machine": machine_info(),
        "examples": args.examples,
        "latency": args.latency,
        "http": {},
        "scripted": {},
    }
    proc, api_base = _start_server(args.latency)
    try:
        for c in args.concurrency:
            ideal = args.examples * args.latency / c
            for name in clients:
                row = run(name, c, api_base)
                row["x_ideal"] = row["seconds"] / ideal
                results["http"][f"{name}@{c}"] = row
    finally:
        proc.terminate()
        proc.wait()
    for name in ["dsx-scripted"] + ([] if args.skip_dspy else ["dspy-scripted"]):
        results["scripted"][name] = run(name, 16)

    lines = [
        f"Evaluate of Predict over {args.examples} examples, server latency {args.latency * 1000:.0f} ms",
        "",
        "| client | concurrency | seconds | calls/s | x ideal |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, row in results["http"].items():
        name, c = key.split("@")
        lines.append(
            f"| {name} | {c} | {row['seconds']:.2f} | {row['calls_per_s']:.0f} | {row['x_ideal']:.2f} |"
        )
    lines += ["", "| scripted LM (num_threads=16) | examples/s |", "|---|---:|"]
    for name, row in results["scripted"].items():
        lines.append(f"| {name} | {row['calls_per_s']:.0f} |")
    checks = []
    for c in args.concurrency:
        dsx_row, bare_row = results["http"][f"dsx@{c}"], results["http"][f"bare@{c}"]
        if c == 16:
            checks.append(
                f"dsx ≤ 1.10x ideal at 16: {dsx_row['x_ideal']:.2f}x → {'PASS' if dsx_row['x_ideal'] <= 1.10 else 'FAIL'}"
            )
        if c == 256:
            half = dsx_row["calls_per_s"] / bare_row["calls_per_s"]
            checks.append(
                f"dsx ≥ 0.5x bare at 256: {half:.2f}x → {'PASS' if half >= 0.5 else 'FAIL'}"
            )
    lines += ["", *checks]
    print("\n".join(lines))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "evaluate.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
