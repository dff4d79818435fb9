"""The in-process workloads, run for one framework per fresh interpreter.

Usage: ``python bench/_workload.py dsx|dspy [--calls N] [--reps R] [--warmup W]``
prints one JSON line. ``--profile predict|cot|async`` instead prints a cProfile of that
workload (top functions by own time).

Each framework runs in its own interpreter so that neither pays for the other's imported
modules (more live objects make every garbage collection slower).

Both sides get the same workload, built from the two small ``_Side`` classes below:
the same string signature (built once, outside the timed loops), the same question, each
framework's own in-process scripted LM (``DummyLM``) configured through its own
``configure(lm=...)``, and each framework's default (chat) adapter. Neither side caches
LM responses: dsx's DummyLM has no cache, and DSPy 3.4.1's DummyLM sets
``_cache_responses = False`` so every call runs DSPy's full request path.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import sys
import time
from collections.abc import Callable
from typing import Any

QUESTION = "What is the capital of France?"
ANSWER = {"answer": "Paris"}
COT_ANSWER = {"reasoning": "France's capital city is Paris.", "answer": "Paris"}


class _Side:
    """One framework's entry points, so the workloads below are written once."""

    name: str

    def make_lm(self, answers: list[dict[str, str]]) -> Any: ...
    def configure(self, lm: Any) -> None: ...
    def signature(self, text: str) -> Any: ...
    def predict(self, sig: Any) -> Any: ...
    def chain_of_thought(self, sig: Any) -> Any: ...
    def formatter(self, sig: Any, predict: Any) -> Callable[[], Any]: ...

    def between_reps(self) -> None:
        """Runs outside the timed region before each repetition."""


class _Dsx(_Side):
    name = "dsx"

    def __init__(self) -> None:
        import dsx
        import dsx.testing

        self.dsx = dsx
        self.testing = dsx.testing

    def make_lm(self, answers: list[dict[str, str]]) -> Any:
        # A list is consumed in order, one answer per call, like DSPy's list mode.
        return self.testing.DummyLM(answers)

    def configure(self, lm: Any) -> None:
        self.dsx.configure(lm=lm)

    def signature(self, text: str) -> Any:
        return self.dsx.Signature(text)

    def predict(self, sig: Any) -> Any:
        return self.dsx.Predict(sig)

    def chain_of_thought(self, sig: Any) -> Any:
        return self.dsx.ChainOfThought(sig)

    def formatter(self, sig: Any, predict: Any) -> Callable[[], Any]:
        render = predict.render
        return lambda: render(question=QUESTION)


class _Dspy(_Side):
    name = "dspy"

    def __init__(self) -> None:
        import dspy
        import dspy.clients.base_lm
        from dspy.utils.dummies import DummyLM

        self.dspy = dspy
        self.base_lm = dspy.clients.base_lm
        self.DummyLM = DummyLM
        self.lms: list[Any] = []
        self.modules: list[Any] = []

    def make_lm(self, answers: list[dict[str, str]]) -> Any:
        lm = self.DummyLM(answers)
        self.lms.append(lm)
        return lm

    def configure(self, lm: Any) -> None:
        self.dspy.configure(lm=lm)

    def signature(self, text: str) -> Any:
        return self.dspy.Signature(text)

    def predict(self, sig: Any) -> Any:
        module = self.dspy.Predict(sig)
        self.modules.append(module)
        return module

    def chain_of_thought(self, sig: Any) -> Any:
        module = self.dspy.ChainOfThought(sig)
        self.modules.append(module)
        return module

    def formatter(self, sig: Any, predict: Any) -> Callable[[], Any]:
        adapter = self.dspy.ChatAdapter()
        fmt = adapter.format
        return lambda: fmt(sig, demos=[], inputs={"question": QUESTION})

    def between_reps(self) -> None:
        # DSPy keeps up to 10,000 history entries (globally, per LM and per calling module)
        # and then trims each with list.pop(0). Clearing them (untimed) keeps DSPy below
        # that limit and its heap smaller: this favours DSPy slightly. dsx's histories are
        # bounded deques of 100-200 entries and need no help.
        self.base_lm.GLOBAL_HISTORY.clear()
        for owner in [*self.lms, *self.modules]:
            owner.history.clear()
            for _, predictor in getattr(owner, "named_predictors", list)():
                predictor.history.clear()


def _make_side(name: str) -> _Side:
    return _Dsx() if name == "dsx" else _Dspy()


# -- workloads -----------------------------------------------------------------------------
def _sync_calls(module: Any, n: int) -> tuple[float, Any]:
    call = module.__call__
    start = time.perf_counter()
    for _ in range(n):
        pred = call(question=QUESTION)
    return time.perf_counter() - start, pred


async def _async_calls(module: Any, n: int, warmup: int) -> tuple[float, Any]:
    acall = module.acall
    for _ in range(warmup):
        await acall(question=QUESTION)
    start = time.perf_counter()
    for _ in range(n):
        pred = await acall(question=QUESTION)
    return time.perf_counter() - start, pred


def _check(pred: Any, answer: dict[str, str]) -> None:
    for key, value in answer.items():
        got = getattr(pred, key)
        if got != value:
            raise AssertionError(f"expected {key}={value!r}, got {got!r}: the workload is broken")


def per_call(side: _Side, kind: str, *, calls: int, reps: int, warmup: int) -> list[float]:
    """Seconds per call for each repetition of a ``calls``-long loop."""
    sig = side.signature("question -> answer")
    module = side.chain_of_thought(sig) if kind == "cot" else side.predict(sig)
    answer = COT_ANSWER if kind == "cot" else ANSWER
    per_rep_warmup = warmup if kind == "async" else 0
    total = warmup + reps * (calls + per_rep_warmup)
    side.configure(side.make_lm([answer] * (total + 10)))
    samples = []
    if kind == "async":
        for _ in range(reps):
            side.between_reps()
            elapsed, pred = asyncio.run(_async_calls(module, calls, warmup))
            _check(pred, answer)
            samples.append(elapsed / calls)
        return samples
    _sync_calls(module, warmup)
    for _ in range(reps):
        side.between_reps()
        elapsed, pred = _sync_calls(module, calls)
        _check(pred, answer)
        samples.append(elapsed / calls)
    return samples


def signature_build(side: _Side, *, n: int, reps: int) -> list[float]:
    """Seconds to build ``Signature("question -> answer")`` from its string."""
    build = side.signature
    build("question -> answer")  # warm-up
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(n):
            build("question -> answer")
        samples.append((time.perf_counter() - start) / n)
    return samples


def formatting(side: _Side, *, n: int, reps: int, warmup: int) -> list[float]:
    """Seconds to render the messages of one call (no LM, no parsing)."""
    sig = side.signature("question -> answer")
    fmt = side.formatter(sig, side.predict(sig))
    for _ in range(warmup):
        fmt()
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(n):
            fmt()
        samples.append((time.perf_counter() - start) / n)
    return samples


def profile(side: _Side, kind: str, *, calls: int, top: int) -> str:
    """cProfile of ``calls`` calls of the ``kind`` workload, top functions by own time."""
    sig = side.signature("question -> answer")
    module = side.chain_of_thought(sig) if kind == "cot" else side.predict(sig)
    answer = COT_ANSWER if kind == "cot" else ANSWER
    side.configure(side.make_lm([answer] * (2 * calls + 200)))
    _sync_calls(module, 100)
    profiler = cProfile.Profile()
    if kind == "async":
        profiler.enable()
        asyncio.run(_async_calls(module, calls, 0))
    else:
        profiler.enable()
        _sync_calls(module, calls)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework", choices=["dsx", "dspy"])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--sig-builds", type=int, default=500)
    parser.add_argument("--profile", choices=["predict", "cot", "async"])
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)

    side = _make_side(args.framework)
    if args.profile:
        print(profile(side, args.profile, calls=args.calls, top=args.top))
        return
    opts = {"calls": args.calls, "reps": args.reps, "warmup": args.warmup}
    results = {
        "predict": per_call(side, "predict", **opts),
        "cot": per_call(side, "cot", **opts),
        "async_predict": per_call(side, "async", **opts),
        "signature_build": signature_build(side, n=args.sig_builds, reps=args.reps),
        "format": formatting(side, n=args.calls, reps=args.reps, warmup=args.warmup),
    }
    json.dump(results, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
