"""`make demo` on the real local model: wall time cold and warm, scores before/after optimizing.

Cold: an empty LM disk cache and no `examples/build/` (so `dsx build` optimizes). Warm: the
same again right after (LM answers and the optimization come from the caches). The review
classifier's held-out score before and after optimizing is read from the demo's own output.

    .venv/bin/python bench/demo_local.py            # needs the local model (dsx model check)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCORES = re.compile(
    r"review classifier on held-out data: ([\d.]+)% before optimizing, ([\d.]+)% after"
)


def run_demo(cache_dir: str) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSX_")}
    env["DSX_CACHE_DIR"] = cache_dir
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"the demo failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return elapsed, done.stdout


def main() -> None:
    from dsx.local import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        raise SystemExit(f"the local model is unavailable: {reason}")
    shutil.rmtree(ROOT / "examples" / "build", ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix="dsx-bench-cache-") as cache:
        cold, out = run_demo(cache)
        warm, out_warm = run_demo(cache)
    scores = SCORES.search(out)
    warm_scores = SCORES.search(out_warm)
    rows = {
        "demo wall time, cold (s)": round(cold, 1),
        "demo wall time, warm (s)": round(warm, 1),
        "classifier before optimizing (%)": float(scores.group(1)) if scores else None,
        "classifier after optimizing (%)": float(scores.group(2)) if scores else None,
        "same scores when warm": bool(
            warm_scores and scores and warm_scores.groups() == scores.groups()
        ),
    }
    print("| figure | value |\n|---|---|")
    for key, value in rows.items():
        print(f"| {key} | {value} |")
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    (results / "demo_local.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
