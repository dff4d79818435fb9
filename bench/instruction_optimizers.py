"""MIPROv2, COPRO, GEPA and SIMBA, dsx vs DSPy 3.4.1 on the scripted prompt-sensitive task.

The task LM answers correctly (the word in upper case) only when the instruction says
"uppercase" (or demos are present); the prompt model proposes a fixed cycle of instructions,
one of five works. GEPA's metric adds textual feedback ("the answer must be in uppercase")
and its reflection writes a working instruction only when the feedback says so; SIMBA's
resampling runs (temperature 1.0) get odd rollout ids right, and its rules say "uppercase".
Both LMs are in-process scripted LMs that sleep ``--latency`` seconds per call, so the wall
time shows how well each optimizer keeps requests in flight. DSPy's side
(bench/_instruction_dspy.py) scripts the same answers with a ``dspy.BaseLM`` subclass; the
task, data and settings are shared (bench/_instruction_task.py). Each optimizer runs per
framework in its own fresh interpreter; the table compares score, LM calls and wall time.

    python bench/instruction_optimizers.py [--latency 0.02] [--threads 16]   # both sides
    python bench/instruction_optimizers.py --worker dsx NAME                 # one dsx row, JSON
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
from _common import BENCH_DIR, RESULTS_DIR, machine_info, run_json  # not a package: sys.path
from _instruction_task import (
    HELD_OUT,
    PROPOSALS,
    ROWS,
    START_INSTRUCTION,
    TRAIN,
    VAL,
    WORDS,
    lm_rounds,
    works,
)

import dsx
from dsx.testing import FunctionLM

#: dsx's score must be at least DSPy's, and its wall time at most this fraction of DSPy's.
TARGET_WALL_RATIO = 1 / 3


def _instruction(messages: list[dict[str, Any]]) -> str:
    system = messages[0]["content"]
    return system.split("Your task:\n", 1)[1] if "Your task:" in system else ""


#: When each LM call started (``time.perf_counter``), both LMs.
STARTS: list[float] = []


def lms(latency: float) -> tuple[FunctionLM, FunctionLM]:
    async def task(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        STARTS.append(time.perf_counter())
        await asyncio.sleep(latency)
        m = re.search(r"<<< text >>>\n(.*?)\n\n", messages[-1]["content"], re.S)
        text = m.group(1) if m else ""
        ok = works(
            _instruction(messages),
            len(messages),
            kwargs.get("temperature"),
            kwargs.get("rollout_id", 0),
        )
        return {"answer": text.upper() if ok else "?"}

    index = [0]

    async def prompt(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        STARTS.append(time.perf_counter())
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
    """One dsx row: compile (timed), then score the result on the valset and held-out."""
    task, prompt = lms(latency)
    data = [dsx.Example(text=w, answer=w.upper()).with_inputs("text") for w in WORDS]
    train, val = data[TRAIN], data[VAL]
    cfg = dict(ROWS[name])
    common: dict[str, Any] = {
        "metric": metric,
        "prompt_model": prompt,
        "num_threads": threads,
        "display_progress": False,
        "seed": 0,
    }
    if name.startswith("MIPROv2"):
        opt: Any = dsx.MIPROv2(**cfg, **common)
    elif name == "GEPA":
        opt = dsx.GEPA(
            metric=feedback_metric,
            reflection_lm=prompt,
            **cfg,
            **{k: v for k, v in common.items() if k not in ("metric", "prompt_model")},
        )
    elif name == "SIMBA":
        opt = dsx.SIMBA(**cfg, **common)
    else:
        opt = dsx.COPRO(**cfg, **common)
    student = dsx.Predict(dsx.Signature("text -> answer", START_INSTRUCTION))
    # DSPy's SIMBA takes no valset (it picks its winner on the trainset): the same here
    compile_kw = {"trainset": train} if name == "SIMBA" else {"trainset": train, "valset": val}
    start = time.perf_counter()
    with dsx.context(lm=task):
        best = opt.compile(student, **compile_kw)
    end = time.perf_counter()
    wall = end - start
    rounds = lm_rounds([t for t in STARTS if start <= t <= end], latency)
    task_calls, prompt_calls = task.num_calls, prompt.num_calls
    scores = {}
    for key, devset in (("valset_score", val), ("held_out_score", data[HELD_OUT])):
        ev = dsx.Evaluate(devset=devset, metric=metric, num_threads=threads, display_progress=False)
        with dsx.context(lm=task):
            scores[key] = float(ev(best).score)
    return {
        "optimizer": name,
        **scores,
        "task_lm_calls": task_calls,
        "prompt_lm_calls": prompt_calls,
        "wall_s": round(wall, 3),
        "lm_rounds": rounds,
        "instruction": best.signature.instructions,
        "demos": len(best.demos),
    }


def _worker(framework: str, name: str, args: argparse.Namespace) -> dict[str, Any]:
    script = "instruction_optimizers.py" if framework == "dsx" else "_instruction_dspy.py"
    argv = [str(BENCH_DIR / script)]
    argv += ["--worker", "dsx"] if framework == "dsx" else []
    argv += [name, f"--latency={args.latency}", f"--threads={args.threads}"]
    try:
        return dict(run_json(argv, timeout=600))
    except Exception as exc:  # reported in the table, not faked
        return {"optimizer": name, "error": f"{type(exc).__name__}: {exc}"[-300:]}


def _calls(r: dict[str, Any]) -> int:
    return int(r["task_lm_calls"]) + int(r["prompt_lm_calls"])


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> tuple[str, bool]:
    lines = [
        "| optimizer (settings) | dsx score val / held-out | DSPy score val / held-out "
        "| dsx LM calls (task+prompt) | DSPy LM calls (task+prompt) | LM rounds dsx / DSPy "
        "| dsx wall | DSPy wall | wall dsx/DSPy | score ≥ | wall ≤ 1/3 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    all_ok = True
    for row in rows:
        name, d, p = row["optimizer"], row["dsx"], row["dspy"]
        settings = ", ".join(f"{k}={v}" for k, v in ROWS[name].items())
        if "error" in d or "error" in p:
            all_ok = False
            err = d.get("error") or p.get("error")
            side = "dsx" if "error" in d else "DSPy"
            lines.append(f"| {name} ({settings}) | {side} did not run: {err} ||||||||||")
            continue
        ratio = d["wall_s"] / p["wall_s"] if p["wall_s"] else float("nan")
        score_ok = d["valset_score"] >= p["valset_score"] and (
            d["held_out_score"] >= p["held_out_score"]
        )
        wall_ok = ratio <= TARGET_WALL_RATIO
        all_ok = all_ok and score_ok and wall_ok
        lines.append(
            f"| {name} ({settings}) "
            f"| {d['valset_score']:.0f}% / {d['held_out_score']:.0f}% "
            f"| {p['valset_score']:.0f}% / {p['held_out_score']:.0f}% "
            f"| {_calls(d)} ({d['task_lm_calls']}+{d['prompt_lm_calls']}) "
            f"| {_calls(p)} ({p['task_lm_calls']}+{p['prompt_lm_calls']}) "
            f"| {d.get('lm_rounds', '?')} / {p.get('lm_rounds', '?')} "
            f"| {d['wall_s']:.2f} s | {p['wall_s']:.2f} s | {ratio:.2f} "
            f"| {'PASS' if score_ok else 'FAIL'} | {'PASS' if wall_ok else 'FAIL'} |"
        )
    lines.append("")
    lines.append(
        f"Latency {args.latency * 1000:.0f} ms per LM call, {args.threads} threads; LM calls, "
        "LM rounds (sequential round-trips: calls that start together count once) and wall "
        "time cover `compile` only (the two scores are measured afterwards)."
    )
    lines.append(f"Targets overall: {'PASS' if all_ok else 'FAIL'}")
    return "\n".join(lines), all_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per LM call")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--worker", choices=["dsx"], help="run one row in this process")
    parser.add_argument("name", nargs="?", choices=list(ROWS))
    args = parser.parse_args(argv)
    if args.worker:
        if not args.name:
            parser.error("--worker needs an optimizer name")
        print(json.dumps(run(args.name, args.latency, args.threads)))
        return 0
    names = [args.name] if args.name else list(ROWS)
    rows = []
    for name in names:
        rows.append({"optimizer": name, "dsx": _worker("dsx", name, args)})
        rows[-1]["dspy"] = _worker("dspy", name, args)
    table, _ = report(rows, args)
    print(table)
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / "instruction_optimizers.json"
    payload = {
        "machine": machine_info(),
        "latency": args.latency,
        "threads": args.threads,
        "rows": rows,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
