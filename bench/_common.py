"""Small helpers shared by the benchmark scripts: statistics, subprocesses, machine info."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"

#: Byte-code caches for the benchmark's interpreters. dsx is installed editable, so with
#: PYTHONDONTWRITEBYTECODE set (as on these machines) it would be compiled from source on
#: every import while DSPy loads the .pyc files pip wrote. A shared prefix puts both in
#: the same state after one untimed import, and writes nothing into src/ or site-packages.
PYCACHE_DIR = RESULTS_DIR / "pycache"

#: The environment of every benchmark subprocess. litellm downloads a cost map at import
#: and retries for seconds when offline; DSPy's DummyLM never imports litellm, but set the
#: switch anyway so that no run ever waits on the network.
BENCH_ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "PYTHONPYCACHEPREFIX": str(PYCACHE_DIR),
}


def summary(samples: Sequence[float]) -> dict[str, Any]:
    """Median and min of ``samples`` (the raw samples are kept too)."""
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "samples": list(samples),
    }


def run_json(args: Sequence[str], *, timeout: float = 300) -> Any:
    """Run ``sys.executable args...`` with the bench environment; parse its last stdout line."""
    proc = subprocess.run(
        [sys.executable, *args],
        env=BENCH_ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(args)}` failed with exit code {proc.returncode}:\n{proc.stderr}"
        )
    if proc.stderr.strip():
        # Warnings are worth seeing but must not break the JSON on stdout.
        sys.stderr.write(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def timed_subprocess(code: str) -> tuple[float, float | None]:
    """Run ``python -c code``; return (wall seconds, the float it printed, if any)."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=BENCH_ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"`python -c {code!r}` failed:\n{proc.stderr}")
    out = proc.stdout.strip()
    return wall, float(out) if out else None


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        affinity = None
    cpu_model = platform.processor() or None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "cpu_model": cpu_model,
        "dsx": _version("dsx"),
        "dspy": _version("dspy"),
    }


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
