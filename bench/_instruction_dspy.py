"""DSPy 3.4.1's side of bench/instruction_optimizers.py (run in its own interpreter).

    python bench/_instruction_dspy.py NAME --latency S --threads N   # prints one JSON line

The same scripted task as dsx's side: a ``dspy.BaseLM`` subclass answers the word in upper
case only when the instruction (the system prompt's "your objective is:" part) says
"uppercase", when demos are present (more than two messages), or on SIMBA's odd resampling
rollouts (temperature 1.0); a scripted prompt/reflection LM proposes the same fixed cycle of
instructions. Both sleep ``--latency`` seconds per call. No response cache: a legacy
``BaseLM`` subclass with ``cache=False`` is never cached by DSPy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _instruction_task import (  # not a package: sys.path
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

warnings.filterwarnings("ignore", category=DeprecationWarning)

import dspy  # noqa: E402

#: Calls per LM role, shared by every copy DSPy makes of an LM (SIMBA copies the task LM).
CALLS = {"task": 0, "prompt": 0}
_LOCK = threading.Lock()
_INDEX = [0]  # the prompt model's position in PROPOSALS (as dsx's side)
STARTS: list[float] = []  # when each LM call started (time.perf_counter)


def _response(contents: list[str]) -> dict[str, Any]:
    return {
        "choices": [
            {"message": {"role": "assistant", "content": c}, "finish_reason": "stop"}
            for c in contents
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "model": "scripted",
    }


def _fields(values: dict[str, str], as_json: bool = False) -> str:
    if as_json:  # the prompt asked for a JSON object (JSONAdapter)
        return json.dumps(values)
    return "".join(f"[[ ## {k} ## ]]\n{v}\n\n" for k, v in values.items()) + "[[ ## completed ## ]]"


def _output_fields(system: str) -> list[str]:
    block = system.split("Your output fields are:", 1)[-1].split("All interactions", 1)[0]
    return re.findall(r"^\d+\. `(\w+)`", block, re.M)


class ScriptedLM(dspy.BaseLM):
    def __init__(self, role: str, latency: float) -> None:
        super().__init__(f"scripted-{role}", cache=False)
        self.role = role
        self.latency = latency

    def forward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
        STARTS.append(time.perf_counter())
        time.sleep(self.latency)
        return self._answer(prompt, messages, kwargs)

    async def aforward(self, prompt: Any = None, messages: Any = None, **kwargs: Any) -> Any:
        STARTS.append(time.perf_counter())
        await asyncio.sleep(self.latency)
        return self._answer(prompt, messages, kwargs)

    def _answer(self, prompt: Any, messages: Any, kwargs: dict[str, Any]) -> Any:
        messages = messages or [{"role": "user", "content": prompt}]
        kw = {**self.kwargs, **kwargs}
        with _LOCK:
            CALLS[self.role] += 1
            if self.role == "task":
                return _response([self._task(messages, kw)] * int(kw.get("n") or 1))
            return _response(self._prompt(messages, int(kw.get("n") or 1)))

    @staticmethod
    def _task(messages: list[dict[str, Any]], kw: dict[str, Any]) -> str:
        system = messages[0]["content"]
        instruction = (
            system.split("your objective is:", 1)[-1] if messages[0]["role"] == "system" else ""
        )
        m = re.search(r"\[\[ ## text ## \]\]\n(.*?)\n\n", messages[-1]["content"], re.S)
        text = m.group(1) if m else ""
        ok = works(instruction, len(messages), kw.get("temperature"), kw.get("rollout_id", 0))
        return _fields({"answer": text.upper() if ok else "?"})

    @staticmethod
    def _prompt(messages: list[dict[str, Any]], n: int) -> list[str]:
        system = messages[0]["content"]
        if messages[0]["role"] != "system" or "Your output fields are:" not in system:
            # GEPA's reflection: a raw prompt; the new instruction goes in a ``` block.
            good = "uppercase" in messages[-1]["content"]
            return [f"```\n{PROPOSALS[2] if good else PROPOSALS[_INDEX[0] % 2]}\n```"] * n
        fields = _output_fields(system)
        as_json = "Outputs will be a JSON object" in system
        if "new_instruction" in fields:  # GEPA's reflection (a dspy.Predict proposer)
            good = "uppercase" in messages[-1]["content"]
            new = PROPOSALS[2] if good else PROPOSALS[_INDEX[0] % 2]
            return [_fields({"new_instruction": new}, as_json)] * n
        if "module_advice" in fields:  # SIMBA's rule
            advice = {"discussion": "-", "module_advice": '{"self": "Answer in uppercase."}'}
            return [_fields(advice, as_json)] * n
        if "proposed_instruction" in fields:  # MIPROv2 and COPRO
            out = []
            for _ in range(n):
                values = {f: "Answer:" for f in fields}
                values["proposed_instruction"] = PROPOSALS[_INDEX[0] % len(PROPOSALS)]
                _INDEX[0] += 1
                out.append(_fields(values, as_json))
            return out
        # MIPROv2's dataset and program summaries.
        summary = "Single words; answers are the words in capitals."
        return [_fields({f: summary for f in fields}, as_json)] * n


def metric(example: Any, pred: Any, trace: Any = None) -> bool:
    return bool(example.answer == pred.answer)


def feedback_metric(
    gold: Any, pred: Any, trace: Any = None, pred_name: Any = None, pred_trace: Any = None
) -> Any:
    ok = gold.answer == pred.answer
    hint = "Correct." if ok else f"Expected {gold.answer!r}: the answer must be in uppercase."
    return dspy.Prediction(score=float(ok), feedback=hint)


def run(name: str, latency: float, threads: int) -> dict[str, Any]:
    task, prompt = ScriptedLM("task", latency), ScriptedLM("prompt", latency)
    dspy.configure(lm=task)
    data = [dspy.Example(text=w, answer=w.upper()).with_inputs("text") for w in WORDS]
    train, val = data[TRAIN], data[VAL]
    cfg = dict(ROWS[name])
    student = dspy.Predict(dspy.Signature("text -> answer", START_INSTRUCTION))
    if name.startswith("MIPROv2"):
        opt: Any = dspy.MIPROv2(
            metric=metric,
            prompt_model=prompt,
            task_model=task,
            auto=None,
            num_candidates=cfg["num_candidates"],
            num_threads=threads,
            seed=0,
            verbose=False,
        )
        compile_kw: dict[str, Any] = {
            "trainset": train,
            "valset": val,
            "num_trials": cfg["num_trials"],
            "minibatch": cfg["minibatch"],
            "seed": 0,
        }
        if cfg["minibatch"]:
            compile_kw["minibatch_size"] = cfg["minibatch_size"]
    elif name == "COPRO":
        opt = dspy.COPRO(
            prompt_model=prompt, metric=metric, breadth=cfg["breadth"], depth=cfg["depth"]
        )
        # DSPy's COPRO scores on its trainset; dsx's scores on the valset: pass the valset.
        compile_kw = {
            "trainset": val,
            "eval_kwargs": {"num_threads": threads, "display_progress": False},
        }
    elif name == "GEPA":
        opt = dspy.GEPA(
            metric=feedback_metric,
            reflection_lm=prompt,
            max_metric_calls=cfg["max_metric_calls"],
            use_merge=cfg["use_merge"],
            num_threads=threads,
            seed=0,
        )
        compile_kw = {"trainset": train, "valset": val}
    elif name == "SIMBA":
        opt = dspy.SIMBA(
            metric=metric,
            bsize=cfg["bsize"],
            num_candidates=cfg["num_candidates"],
            max_steps=cfg["max_steps"],
            num_threads=threads,
        )
        compile_kw = {"trainset": train, "seed": 0}
    else:
        raise SystemExit(f"unknown optimizer {name}")
    start = time.perf_counter()
    best = opt.compile(student, **compile_kw)
    end = time.perf_counter()
    wall = end - start
    rounds = lm_rounds([t for t in STARTS if start <= t <= end], latency)
    task_calls, prompt_calls = CALLS["task"], CALLS["prompt"]
    valset_eval = dspy.Evaluate(
        devset=val, metric=metric, num_threads=threads, display_progress=False
    )
    held_out = dspy.Evaluate(
        devset=data[HELD_OUT], metric=metric, num_threads=threads, display_progress=False
    )
    return {
        "optimizer": name,
        "valset_score": float(valset_eval(best).score),
        "held_out_score": float(held_out(best).score),
        "task_lm_calls": task_calls,
        "prompt_lm_calls": prompt_calls,
        "wall_s": round(wall, 3),
        "lm_rounds": rounds,
        "instruction": best.signature.instructions,
        "demos": len(best.demos),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("name", choices=list(ROWS))
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    try:
        row = run(args.name, args.latency, args.threads)
    except Exception as exc:  # reported in the table, not faked
        row = {"optimizer": args.name, "error": f"{type(exc).__name__}: {exc}"[:300]}
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
