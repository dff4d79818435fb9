"""The local model's latency: server start, and one ``Predict`` call in chat and JSON modes.

    .venv/bin/python bench/local_model.py               # 10 calls per mode
    .venv/bin/python bench/local_model.py --calls 20 --starts 3

What each figure measures (wall-clock ``time.perf_counter``, lower is better):

* start: ``LocalModelServer.start()`` — spawn ``python -m llama_cpp.server``, load the GGUF,
  until ``/v1/models`` answers. Median of ``--starts`` servers.
* first call: the first ``Predict`` call of a mode on a started server (llama.cpp's first
  inference, and in JSON mode the grammar built for the output schema).
* per call: ``Predict(ReviewSentiment)(review=...)`` on ``--calls`` different reviews after
  that first call, dsx's response cache off, one call at a time: median and p90.
* requests/call: LM requests per ``Predict`` call. The chat adapter's marker layout is
  often echoed by a model this small; the failed parse then falls back to the JSON
  adapter, a second request. errors: calls that raised anyway.

The model is SmolLM2-135M-Instruct (Q4_1) on llama-cpp-python's server, temperature 0,
threads = the cores this process may use. Results go to ``bench/results/local_model.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, machine_info  # the bench dir is not a package

import dsx
from dsx.local import LocalModelServer, unavailable_reason

REVIEWS = [
    "I loved it, the best purchase this year.",
    "Broke after two days, very disappointed.",
    "Works exactly as described, great value.",
    "The battery died in an hour. Useless.",
    "Fantastic quality and super fast shipping!",
    "Cheap plastic, it cracked immediately.",
    "My kids adore it, we use it every day.",
    "Customer service ignored me; never again.",
    "Comfortable, stylish and well made.",
    "It smells awful and the color is wrong.",
    "Exceeded my expectations in every way.",
    "Stopped working after the first wash.",
]


class ReviewSentiment(dsx.Signature):
    """Classify the sentiment of a product review."""

    review: str = dsx.InputField()
    sentiment: Literal["positive", "negative"] = dsx.OutputField()


def p90(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def measure_mode(server: LocalModelServer, adapter: Any, calls: int) -> dict[str, Any]:
    lm = server.lm(cache=False)
    predict = dsx.Predict(ReviewSentiment)
    samples: list[float] = []
    errors = 0
    first: float | None = None
    reviews = [REVIEWS[i % len(REVIEWS)] for i in range(calls + 1)]
    with dsx.context(lm=lm, adapter=adapter):
        for i, review in enumerate(reviews):
            start = time.perf_counter()
            try:
                predict(review=review)
            except dsx.DsxError:
                errors += 1
            elapsed = time.perf_counter() - start
            if i == 0:
                first = elapsed
            else:
                samples.append(elapsed)
    return {
        "first_s": first,
        "median_s": statistics.median(samples),
        "p90_s": p90(samples),
        "samples_s": samples,
        "requests_per_call": lm.num_calls / len(reviews),
        "errors": errors,
        "calls": len(samples),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10, help="timed calls per mode")
    parser.add_argument("--starts", type=int, default=3, help="server starts to time")
    parser.add_argument("--out", default=str(RESULTS_DIR / "local_model.json"))
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        print(f"local model unavailable: {reason}", file=sys.stderr)
        return 1

    starts = []
    for _ in range(max(0, args.starts - 1)):
        with LocalModelServer() as server:
            starts.append(server.startup_seconds or 0.0)
    with LocalModelServer() as server:
        starts.append(server.startup_seconds or 0.0)
        modes = {
            "chat (ChatAdapter)": measure_mode(server, dsx.ChatAdapter(), args.calls),
            "json (JSONAdapter)": measure_mode(server, dsx.JSONAdapter(), args.calls),
        }
        threads = server.n_threads

    print(f"\nSmolLM2-135M-Instruct Q4_1, llama.cpp server, {threads} threads, cache off\n")
    print(f"server start: median {statistics.median(starts):.2f} s over {len(starts)} starts\n")
    print("| mode | first call | median | p90 | requests/call | errors |")
    print("|---|---|---|---|---|---|")
    for name, m in modes.items():
        print(
            f"| {name} | {m['first_s']:.2f} s | {m['median_s']:.2f} s | {m['p90_s']:.2f} s "
            f"| {m['requests_per_call']:.1f} | {m['errors']}/{m['calls'] + 1} |"
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"machine": machine_info(), "threads": threads, "starts_s": starts, "modes": modes},
            indent=2,
        )
    )
    print(f"\nraw samples: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
