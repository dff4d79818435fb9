"""Sandbox latency: session start, execute round trip, tool-call round trip; both backends.

    .venv/bin/python bench/sandbox.py                 # Wasmtime, and Docker if it can run
    .venv/bin/python bench/sandbox.py --no-docker --executes 5000
    .venv/bin/python bench/sandbox.py --baseline /tmp/dsx-before   # before/after, one run

What each figure measures (wall-clock ``time.perf_counter``, lower is better):

* start: ``Sandbox.start()`` until the guest driver says it is ready, with the compiled
  CPython-WASI module already in the on-disk cache (Wasmtime), or the image present
  (Docker: create, attach and start a container). Median of ``--starts`` sessions.
* execute: one ``execute("x")`` on a started session: send the request, the guest runs
  the code and sends the result with the value, the host builds the ExecutionResult.
  Median of ``--reps`` loops of ``--executes`` calls, per call. ``aexecute`` the same,
  awaited sequentially in one event loop.
* tool call: one guest-to-host tool call and its reply, measured as (time of an execute
  running ``for _ in range(N): f(1)`` minus one execute) / N, with a trivial sync tool.

DSPy's interpreter (Deno + Pyodide) cannot run here (no Deno, no network); it is
reported at about 3 s to start, with no execution timeout. Results go to
``bench/results/sandbox.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, machine_info, summary  # the bench dir is not a package

from dsx.sandbox import Sandbox, SandboxUnavailable, create_sandbox

#: Targets for the Wasmtime backend (issue 7).
TARGETS = {"start_ms": 150.0, "execute_ms": 1.0, "tool_call_ms": 0.5}


def _tool(x: int) -> int:
    return x


def measure(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    starts = []
    for _ in range(args.starts):
        sb = create_sandbox(backend)
        began = time.perf_counter()
        sb.start()
        starts.append(time.perf_counter() - began)
        sb.close()
    sb: Sandbox = create_sandbox(backend, tools={"f": _tool}, max_tool_calls=args.tool_calls)
    sb.start()
    try:
        for _ in range(100):
            sb.execute("x = 1")
        execs = []
        for _ in range(args.reps):
            began = time.perf_counter()
            for _ in range(args.executes):
                sb.execute("x")
            execs.append((time.perf_counter() - began) / args.executes)

        async def async_loop() -> float:
            began = time.perf_counter()
            for _ in range(args.executes):
                await sb.aexecute("x")
            return (time.perf_counter() - began) / args.executes

        aexecs = [asyncio.run(async_loop()) for _ in range(args.reps)]
        code = f"for _ in range({args.tool_calls}):\n    f(1)"
        tools = []
        for _ in range(args.reps):
            base = statistics.median(_timed(sb, "x") for _ in range(20))
            total = _timed(sb, code, limit=args.tool_calls)
            tools.append((total - base) / args.tool_calls)
    finally:
        sb.close()
    return {
        "start_s": summary(starts),
        "execute_s": summary(execs),
        "aexecute_s": summary(aexecs),
        "tool_call_s": summary(tools),
    }


def _timed(sb: Sandbox, code: str, *, limit: int = 0) -> float:
    began = time.perf_counter()
    r = sb.execute(code, timeout=60)
    elapsed = time.perf_counter() - began
    if not r.ok or len(r.tool_calls) != limit:
        raise RuntimeError(f"benchmark code failed: {r.error}")
    return elapsed


def _row(label: str, r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"| {label} | skipped | | | |"
    keys = ("start_s", "execute_s", "aexecute_s", "tool_call_s")
    return f"| {label} | " + " | ".join(f"{r[k]['median'] * 1e3:.3f}" for k in keys) + " |"


def _run_baseline(args: argparse.Namespace) -> dict[str, Any]:
    """This benchmark, run on the baseline tree's dsx in a subprocess; its results."""
    src = args.baseline.resolve() / "src"
    if not (src / "dsx").is_dir():
        raise SystemExit(f"--baseline {args.baseline}: no src/dsx there")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "baseline.json"
        cmd = [sys.executable, __file__, "--out", str(out)]
        for flag in ("starts", "executes", "tool_calls", "reps"):
            cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        if args.no_docker:
            cmd.append("--no-docker")
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]),
        }
        print(f"baseline: {args.baseline}")
        subprocess.run(cmd, env=env, check=True)
        return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=15)
    parser.add_argument("--executes", type=int, default=1000)
    parser.add_argument("--tool-calls", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--no-docker", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "sandbox.json")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a dsx checkout (e.g. from `git worktree add` or `git archive`) measured first, "
        "in a subprocess with its src/ first on PYTHONPATH, and reported side by side",
    )
    args = parser.parse_args()
    baseline = _run_baseline(args) if args.baseline else None
    os.environ.setdefault("DSX_CACHE_DIR", str(Path(tempfile.gettempdir()) / "dsx-bench-cache"))
    from dsx.sandbox._wasm_runtime import compiled_module_path

    began = time.perf_counter()
    compiled_module_path()  # warm the cache (compiles once per machine: 5-12 s)
    print(f"compiled-module cache ready in {time.perf_counter() - began:.2f} s")
    results: dict[str, Any] = {"machine": machine_info(), "targets": TARGETS, "backends": {}}
    backends = ["wasmtime"] + ([] if args.no_docker else ["docker"])
    for backend in backends:
        try:
            results["backends"][backend] = measure(backend, args)
        except SandboxUnavailable as exc:
            print(f"{backend}: skipped — {exc}")
            results["backends"][backend] = {"skipped": str(exc)}
    if baseline is not None:
        results["baseline"] = {"tree": str(args.baseline), **baseline}
    print()
    print("| backend | start (ms) | execute (ms) | aexecute (ms) | tool call (ms) |")
    print("|---|---|---|---|---|")
    for backend, r in results["backends"].items():
        before = (baseline or {}).get("backends", {}).get(backend)
        if before is not None:
            print(_row(f"{backend}, baseline", before))
            print(_row(f"{backend}, this tree", r))
        else:
            print(_row(backend, r))
    print("| DSPy (Deno + Pyodide), reported | ≈ 3000 | | | |")
    wasm = results["backends"].get("wasmtime", {})
    if "start_s" in wasm:
        print()
        for key, target in TARGETS.items():
            got = wasm[key.replace("_ms", "_s")]["median"] * 1e3
            verdict = "PASS" if got <= target else "FAIL"
            print(
                f"target wasmtime {key.removesuffix('_ms')} <= {target} ms: {got:.3f} ms {verdict}"
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
