"""dsx vs DSPy 3.4.1, side by side, in one run (``make bench``).

What each number measures (all wall-clock, ``time.perf_counter``; lower is better):

* import (in-process): seconds spent in ``import dsx`` / ``import dspy``, timed inside a
  fresh ``python`` process (the interpreter's own start-up excluded). Median and min of
  ``--import-reps`` runs, dsx and dspy alternating, after one untimed import each that
  writes both packages' byte-code to ``bench/results/pycache`` (see ``_common.BENCH_ENV``).
* ``python -c "import X"`` wall: the whole fresh process, start-up included; the bare
  interpreter (``python -c pass``) is shown for reference.
* Predict / ChainOfThought per call: µs per ``module(question=...)`` with each framework's
  own in-process scripted ``DummyLM`` configured through its own ``configure(lm=...)``:
  argument checking, prompt formatting, the scripted LM (which renders its reply), history
  and usage bookkeeping, reply parsing and the ``Prediction``. That is the framework's
  overhead per LM call. Median of ``--reps`` loops of ``--calls`` calls, after
  ``--warmup`` untimed calls. No response cache on either side.
* async Predict: the same as Predict, ``await module.acall(...)`` sequentially inside one
  ``asyncio.run`` per repetition.
* signature build: µs to build ``Signature("question -> answer")`` from its string.
* format: µs to render one call's messages without calling the LM: dsx
  ``predict.render(question=...)``, DSPy ``ChatAdapter().format(sig, demos=[], inputs=...)``.
  (dsx computes the signature-only part of the prompt once per signature and adapter;
  that is its design, not a benchmark setting, and DSPy's adapter has no such cache.)

Each framework's in-process workloads run in their own fresh interpreter
(``bench/_workload.py``). Results are printed as a Markdown table and written to
``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # the bench dir is not a package: see sys.path above
    BENCH_DIR,
    BENCH_ENV,
    RESULTS_DIR,
    machine_info,
    run_json,
    summary,
    timed_subprocess,
)

#: The goals this benchmark checks.
TARGET_IMPORT_S = 0.15
TARGET_OVERHEAD_RATIO = 0.10

_IMPORT_CODE = "import time; t = time.perf_counter(); import {mod}; print(time.perf_counter() - t)"


def measure_imports(reps: int) -> dict[str, Any]:
    # One untimed run each first, so that byte-code compilation is not measured.
    for mod in ("dsx", "dspy"):
        timed_subprocess(f"import {mod}")
    inproc: dict[str, list[float]] = {"dsx": [], "dspy": []}
    wall: dict[str, list[float]] = {"dsx": [], "dspy": [], "bare": []}
    for _ in range(reps):
        wall["bare"].append(timed_subprocess("pass")[0])
        for mod in ("dsx", "dspy"):
            elapsed, inside = timed_subprocess(_IMPORT_CODE.format(mod=mod))
            wall[mod].append(elapsed)
            assert inside is not None
            inproc[mod].append(inside)
    return {
        "import_inprocess_s": {k: summary(v) for k, v in inproc.items()},
        "import_wall_s": {k: summary(v) for k, v in wall.items()},
    }


def measure_workloads(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for framework in ("dsx", "dspy"):
        raw = run_json(
            [
                str(BENCH_DIR / "_workload.py"),
                framework,
                f"--calls={args.calls}",
                f"--reps={args.reps}",
                f"--warmup={args.warmup}",
                f"--sig-builds={args.sig_builds}",
            ]
        )
        out[framework] = {metric: summary(samples) for metric, samples in raw.items()}
    return out


# -- report -----------------------------------------------------------------------------
_ROWS = [
    # (label, metric key, unit scale, unit)
    ("Predict, per call", "predict", 1e6, "µs"),
    ("ChainOfThought, per call", "cot", 1e6, "µs"),
    ("async Predict (`acall`), per call", "async_predict", 1e6, "µs"),
    ('Signature("question -> answer")', "signature_build", 1e6, "µs"),
    ("format only (render / ChatAdapter.format)", "format", 1e6, "µs"),
]


def _fmt(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f} s"
    return f"{value:,.1f} {unit}" if value < 1000 else f"{value:,.0f} {unit}"


def _row(label: str, dsx: float, dspy: float, unit: str) -> str:
    ratio = dsx / dspy if dspy else float("nan")
    faster = f" ({1 / ratio:.1f}x faster)" if ratio and ratio < 1 else ""
    return f"| {label} | {_fmt(dsx, unit)} | {_fmt(dspy, unit)} | {ratio:.3f}{faster} |"


def report(results: dict[str, Any]) -> str:
    imp = results["import_inprocess_s"]
    wall = results["import_wall_s"]
    work = results["workloads"]
    lines = [
        "| metric (median; lower is better) | dsx | dspy | ratio dsx/dspy |",
        "|---|---|---|---|",
        _row("`import` (in-process)", imp["dsx"]["median"], imp["dspy"]["median"], "s"),
        _row("`import` (in-process), min", imp["dsx"]["min"], imp["dspy"]["min"], "s"),
        _row(
            '`python -c "import X"` wall',
            wall["dsx"]["median"],
            wall["dspy"]["median"],
            "s",
        ),
    ]
    for label, key, scale, unit in _ROWS:
        lines.append(
            _row(
                label, work["dsx"][key]["median"] * scale, work["dspy"][key]["median"] * scale, unit
            )
        )
    cfg = results["config"]
    info = results["machine"]
    lines += [
        "",
        f"Bare interpreter start-up (`python -c pass`): {wall['bare']['median']:.3f} s. "
        f"Per-call rows: median of {cfg['reps']} loops of {cfg['calls']:,} calls after "
        f"{cfg['warmup']} warm-up calls; imports: {cfg['import_reps']} fresh processes each.",
        f"Python {info['python']} · {info['cpu_count']} CPUs ({info['cpu_model']}) · "
        f"dsx {info['dsx']} · dspy {info['dspy']}",
        "",
        "Targets:",
    ]
    for target in results["targets"]:
        verdict = "PASS" if target["ok"] else "FAIL"
        lines.append(f"- [{verdict}] {target['name']}: {target['detail']}")
    return "\n".join(lines)


def check_targets(results: dict[str, Any]) -> list[tuple[str, bool, str]]:
    imp = results["import_inprocess_s"]["dsx"]["median"]
    targets = [
        (
            f"`import dsx` ≤ {TARGET_IMPORT_S} s",
            imp <= TARGET_IMPORT_S,
            f"{imp:.3f} s (median, in-process)",
        )
    ]
    work = results["workloads"]
    for label, key in (("Predict", "predict"), ("ChainOfThought", "cot")):
        ratio = work["dsx"][key]["median"] / work["dspy"][key]["median"]
        targets.append(
            (
                f"dsx {label} per-call overhead ≤ 1/10 of DSPy's",
                ratio <= TARGET_OVERHEAD_RATIO,
                f"ratio {ratio:.3f} ({1 / ratio:.1f}x faster)",
            )
        )
    return targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="dsx vs DSPy overhead benchmark")
    parser.add_argument("--calls", type=int, default=2000, help="calls per timed loop")
    parser.add_argument("--reps", type=int, default=5, help="timed loops per metric")
    parser.add_argument("--warmup", type=int, default=100, help="untimed calls first")
    parser.add_argument("--sig-builds", type=int, default=500, help="signatures per loop")
    parser.add_argument("--import-reps", type=int, default=7, help="fresh processes each")
    parser.add_argument(
        "--profile",
        choices=["predict", "cot", "async"],
        help="afterwards, print a cProfile of dsx for this workload",
    )
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "latest.json")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": machine_info(),
        "config": {
            "calls": args.calls,
            "reps": args.reps,
            "warmup": args.warmup,
            "sig_builds": args.sig_builds,
            "import_reps": args.import_reps,
        },
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(f"Timing imports ({args.import_reps} fresh processes each)...", file=sys.stderr)
    results.update(measure_imports(args.import_reps))
    print("Timing per-call overhead, signatures and formatting...", file=sys.stderr)
    results["workloads"] = measure_workloads(args)
    results["targets"] = [
        {"name": name, "ok": ok, "detail": detail} for name, ok, detail in check_targets(results)
    ]
    results["duration_s"] = time.perf_counter() - started

    print(report(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nWrote {args.output} ({results['duration_s']:.0f} s in all).")

    if args.profile:
        print(f"\ncProfile of dsx, {args.profile} workload ({args.calls} calls):\n")
        sys.stdout.flush()
        subprocess.run(
            [
                sys.executable,
                str(BENCH_DIR / "_workload.py"),
                "dsx",
                f"--profile={args.profile}",
                f"--calls={args.calls}",
            ],
            env=BENCH_ENV,
            check=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
