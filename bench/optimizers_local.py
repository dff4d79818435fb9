"""Each optimizer on the real local model: the review classifier's held-out score.

The program, data and metric are those of examples/sentiment.dsx (12 training reviews,
24 held-out ones); the task and prompt model are SmolLM2-135M-Instruct on llama.cpp's
server (temperature 0, JSON adapter). Real numbers, whatever they are.

    .venv/bin/python bench/optimizers_local.py                     # every optimizer
    .venv/bin/python bench/optimizers_local.py --only MIPROv2 COPRO
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import dsx
from dsx._load import load_namespace

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sentiment.dsx"


def optimizers(lm: Any, metric: Any) -> dict[str, Any]:
    return {
        "LabeledFewShot(k=4)": lambda: dsx.LabeledFewShot(k=4),
        "BootstrapFewShot(4+4)": lambda: dsx.BootstrapFewShot(
            metric=metric, max_bootstrapped_demos=4, max_labeled_demos=4
        ),
        "COPRO(breadth=3, depth=1)": lambda: dsx.COPRO(
            metric=metric, prompt_model=lm, breadth=3, depth=1, init_temperature=0.7
        ),
        "GEPA(max_metric_calls=120)": lambda: dsx.GEPA(
            metric=metric, reflection_lm=lm, max_metric_calls=120, seed=0
        ),
        "SIMBA(bsize=6, max_steps=3)": lambda: dsx.SIMBA(
            metric=metric, bsize=6, num_candidates=3, max_steps=3, seed=0
        ),
        "MIPROv2(auto=light)": lambda: dsx.MIPROv2(
            metric=metric, prompt_model=lm, task_model=lm, auto="light", seed=0
        ),
    }


def main() -> None:
    from dsx.local import LocalModelServer, unavailable_reason

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="optimizer names (prefixes) to run")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason is not None:
        raise SystemExit(f"the local model is unavailable: {reason}")
    ns = load_namespace(EXAMPLE)
    train, dev = ns.data("train"), ns.data("dev")
    metric = ns.metric("same_label")
    rows: list[dict[str, Any]] = []
    with LocalModelServer() as server:
        settings = server.settings(cache=False)
        lm = settings["lm"]
        with dsx.context(**settings):

            def score(program: Any) -> float:
                evaluate = dsx.Evaluate(devset=dev, metric=metric, display_progress=False)
                return float(evaluate(program).score)

            start = time.perf_counter()
            rows.append(
                {
                    "optimizer": "none (baseline)",
                    "held-out score (%)": score(ns.program("sentiment")),
                    "optimize time (s)": 0.0,
                    "eval time (s)": round(time.perf_counter() - start, 1),
                }
            )
            for name, make in optimizers(lm, metric).items():
                if args.only and not any(name.startswith(o) for o in args.only):
                    continue
                optimizer = make()
                start = time.perf_counter()
                try:
                    compiled = optimizer.compile(ns.program("sentiment"), trainset=train)
                except Exception as exc:  # report and go on: real numbers, whatever they are
                    rows.append({"optimizer": name, "error": f"{type(exc).__name__}: {exc}"})
                    continue
                took = time.perf_counter() - start
                start = time.perf_counter()
                rows.append(
                    {
                        "optimizer": name,
                        "held-out score (%)": score(compiled),
                        "optimize time (s)": round(took, 1),
                        "eval time (s)": round(time.perf_counter() - start, 1),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    keys = ["optimizer", "held-out score (%)", "optimize time (s)", "eval time (s)", "error"]
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(str(row.get(k, "")) for k in keys) + " |")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "optimizers_local.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
