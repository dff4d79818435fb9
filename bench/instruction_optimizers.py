"""MIPROv2, COPRO, GEPA and SIMBA on the prompt-sensitive scripted task: score, LM calls, wall time.

The task LM answers correctly (the word in upper case) only when the instruction says
"uppercase"; the prompt model proposes a fixed cycle of instructions, one of five works.
GEPA's metric adds textual feedback ("the answer must be in uppercase") and its reflection
writes a working instruction only when the feedback says so; SIMBA's resampling runs
(temperature 1.0) get odd rollout ids right, and its rules say "uppercase". Both LMs are
in-process scripted LMs that sleep ``--latency`` seconds per call (async), so
the wall time shows how well each optimizer keeps requests in flight.

    python bench/instruction_optimizers.py [--latency 0.02] [--threads 16]

DSPy is not run side by side here yet (issue 13 asks for it; see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, machine_info  # not a package: sys.path

import dsx
from dsx.testing import FunctionLM

PROPOSALS = [
    "Echo the text back exactly.",
    "Answer carefully and concisely.",
    "Write the text in UPPERCASE letters.",
    "Repeat the input word.",
    "Think about the word first.",
]
WORDS = [f"word{i}" for i in range(40)]


def _instruction(messages: list[dict[str, Any]]) -> str:
    system = messages[0]["content"]
    return system.split("Your task:\n", 1)[1] if "Your task:" in system else ""


def lms(latency: float) -> tuple[FunctionLM, FunctionLM]:
    async def task(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        await asyncio.sleep(latency)
        m = re.search(r"<<< text >>>\n(.*?)\n\n", messages[-1]["content"], re.S)
        text = m.group(1) if m else ""
        lucky = kwargs.get("temperature") == 1.0 and kwargs.get("rollout_id", 0) % 2 == 1
        works = "uppercase" in _instruction(messages).lower() or len(messages) > 2 or lucky
        return {"answer": text.upper() if works else "?"}

    index = [0]

    async def prompt(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        await asyncio.sleep(latency)
        if "<<< observations >>>" in messages[0]["content"]:
            return {"observations": "Single words; answers are the words in capitals."}
        if "new_instruction" in messages[0]["content"]:  # GEPA's reflection
            good = "uppercase" in messages[-1]["content"]
            return {"new_instruction": PROPOSALS[2] if good else PROPOSALS[index[0] % 2]}
        if "module_advice" in messages[0]["content"]:  # SIMBA's rule
            return {"discussion": "-", "module_advice": {"self": "Answer in uppercase."}}
        out = []
        for _ in range(int(kwargs.get("n") or 1)):
            out.append({"proposed_instruction": PROPOSALS[index[0] % len(PROPOSALS)]})
            index[0] += 1
        return out if len(out) > 1 else out[0]

    return FunctionLM(task, model="task"), FunctionLM(prompt, model="prompt")


def metric(example: Any, pred: Any, trace: Any = None) -> bool:
    return bool(example.answer == pred.answer)


def feedback_metric(example: Any, pred: Any, trace: Any = None) -> Any:
    ok = example.answer == pred.answer
    hint = "Correct." if ok else f"Expected {example.answer!r}: the answer must be in uppercase."
    return dsx.Prediction(score=float(ok), feedback=hint)


def run(name: str, latency: float, threads: int) -> dict[str, Any]:
    task, prompt = lms(latency)
    data = [dsx.Example(text=w, answer=w.upper()).with_inputs("text") for w in WORDS]
    train, val = data[:10], data[10:30]
    common: dict[str, Any] = {
        "metric": metric,
        "prompt_model": prompt,
        "num_threads": threads,
        "display_progress": False,
        "seed": 0,
    }
    if name == "MIPROv2":
        opt: Any = dsx.MIPROv2(
            auto=None, num_candidates=5, num_trials=10, minibatch=False, **common
        )
    elif name == "MIPROv2-minibatch":
        opt = dsx.MIPROv2(auto=None, num_candidates=5, num_trials=10, minibatch_size=8, **common)
    elif name == "GEPA":
        opt = dsx.GEPA(
            metric=feedback_metric,
            reflection_lm=prompt,
            max_metric_calls=150,
            use_merge=False,
            **{k: v for k, v in common.items() if k not in ("metric", "prompt_model")},
        )
    elif name == "SIMBA":
        opt = dsx.SIMBA(bsize=8, num_candidates=4, max_steps=4, **common)
    else:
        opt = dsx.COPRO(breadth=4, depth=3, **common)
    student = dsx.Predict(dsx.Signature("text -> answer", "Repeat the text."))
    start = time.perf_counter()
    with dsx.context(lm=task):
        best = opt.compile(student, trainset=train, valset=val)
    wall = time.perf_counter() - start
    held_out = dsx.Evaluate(devset=data[30:], metric=metric, display_progress=False)
    with dsx.context(lm=task):
        test_score = held_out(best).score
    return {
        "optimizer": name,
        "valset_score": opt.best_score,
        "held_out_score": test_score,
        "task_lm_calls": task.num_calls,
        "prompt_lm_calls": prompt.num_calls,
        "wall_s": round(wall, 3),
        "instruction": best.signature.instructions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per LM call")
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args(argv)
    names = ("MIPROv2", "MIPROv2-minibatch", "COPRO", "GEPA", "SIMBA")
    rows = [run(n, args.latency, args.threads) for n in names]
    for r in rows:
        print(
            f"{r['optimizer']:<18} valset {r['valset_score']!s:>6}%  held-out "
            f"{r['held_out_score']:>6}%  task calls {r['task_lm_calls']:>4}  prompt calls "
            f"{r['prompt_lm_calls']:>3}  {r['wall_s']:.2f}s"
        )
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / "instruction_optimizers.json"
    out.write_text(
        json.dumps(
            {
                "machine": machine_info(),
                "latency": args.latency,
                "threads": args.threads,
                "runs": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
