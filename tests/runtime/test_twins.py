"""Sync and async agree: ReAct, CodeAct, ProgramOfThought, BestOfN and Refine each run one
core (dsx.runtime._attempt) under a sync and an async driver. Hypothesis draws the scripts;
both drivers must give the same prediction and send the same LM requests."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import dsx
from dsx.errors import ContextWindowExceededError
from dsx.testing import FunctionLM
from dsx.testing.fake_sandbox import FakeSandbox, fake_result


def search(query: str) -> str:
    """Search."""
    if query == "boom":
        raise RuntimeError("network down")
    return f"about {query}"


async def lookup(key: str) -> str:
    """Look a key up (async)."""
    await asyncio.sleep(0)
    return key.upper()


def both(make: Any, replies: list[Any], **inputs: Any) -> list[tuple[Any, list[Any]]]:
    """Run ``make()`` sync and async with an LM answering ``replies`` in turn: for each, the
    prediction (or the error's type and text) and the last message of every LM request."""
    out = []
    for kind in ("sync", "async"):
        left = list(replies)
        seen: list[Any] = []

        def reply(messages: list[dict[str, Any]], left: list[Any] = left, seen: list[Any] = seen):
            seen.append(messages[-1]["content"])
            answer = left.pop(0) if left else {"reasoning": "r", "answer": "fallback"}
            if isinstance(answer, Exception):
                raise answer
            return answer

        program = make()
        try:
            with dsx.context(lm=FunctionLM(reply)):
                if kind == "sync":
                    pred: Any = program(**inputs)
                else:
                    pred = asyncio.run(program.acall(**inputs))
            result: Any = pred.to_dict()
        except Exception as exc:
            result = (type(exc).__name__, str(exc))
        out.append((result, seen))
    return out


def agree(runs: list[tuple[Any, list[Any]]]) -> None:
    (sync, sync_seen), (async_, async_seen) = runs
    assert sync == async_
    assert sync_seen == async_seen


def _react_step(kind: str, i: int) -> Any:
    if kind == "overflow":
        return ContextWindowExceededError("too long", model="m", status_code=400)
    tool, args = {
        "search": ("search", {"query": f"q{i}"}),
        "boom": ("search", {"query": "boom"}),
        "bad_args": ("search", {"k": 1}),
        "async_tool": ("lookup", {"key": f"k{i}"}),
        "unknown": ("nope", {}),
        "finish": ("finish", {"answer": f"a{i}"}),
    }[kind]
    return {"next_thought": f"t{i}", "next_tool_name": tool, "next_tool_args": args}


STEP_KINDS = st.sampled_from(
    ["search", "boom", "bad_args", "async_tool", "unknown", "finish", "overflow"]
)


@settings(max_examples=25, deadline=None)
@given(
    kinds=st.lists(STEP_KINDS, max_size=6),
    max_iters=st.integers(min_value=1, max_value=5),
    from_finish=st.booleans(),
)
def test_react(kinds: list[str], max_iters: int, from_finish: bool) -> None:
    replies = [_react_step(k, i) for i, k in enumerate(kinds)]
    replies.append({"reasoning": "r", "answer": "extracted"})
    runs = both(
        lambda: dsx.ReAct(
            "question -> answer",
            tools=[search, lookup],
            max_iters=max_iters,
            extract_from_finish=from_finish,
        ),
        replies,
        question="q?",
    )
    agree(runs)


def _sandbox(results: list[Any]) -> Any:
    def factory(**options: Any) -> FakeSandbox:
        return FakeSandbox(list(results), **options)

    return factory


RESULTS = st.sampled_from(
    [
        fake_result(stdout="5\n"),
        fake_result(error="ZeroDivisionError: division by zero"),
        fake_result(timed_out=True, error="TimeoutError: execution timed out"),
        fake_result(final={"answer": "7"}),
        fake_result(final={"wrong": 1}),
    ]
)


@settings(max_examples=20, deadline=None)
@given(results=st.lists(RESULTS, min_size=4, max_size=4), max_iters=st.integers(1, 4))
def test_code_act(results: list[Any], max_iters: int) -> None:
    replies: list[Any] = [{"reasoning": f"r{i}", "code": f"step{i}"} for i in range(max_iters)]
    replies.append({"reasoning": "r", "answer": "extracted"})
    agree(
        both(
            lambda: dsx.CodeAct(
                "question -> answer", max_iters=max_iters, sandbox=_sandbox(results)
            ),
            replies,
            question="q?",
        )
    )


@settings(max_examples=20, deadline=None)
@given(results=st.lists(RESULTS, min_size=4, max_size=4), max_iters=st.integers(1, 4))
def test_program_of_thought(results: list[Any], max_iters: int) -> None:
    replies: list[Any] = [{"reasoning": f"r{i}", "code": f"code{i}"} for i in range(max_iters)]
    replies.insert(1, {"reasoning": "r", "answer": "from output"})
    agree(
        both(
            lambda: dsx.ProgramOfThought(
                "question -> answer", max_iters=max_iters, sandbox=_sandbox(results)
            ),
            replies,
            question="q?",
        )
    )


@settings(max_examples=25, deadline=None)
@given(
    scores=st.lists(st.one_of(st.integers(0, 5), st.none()), min_size=1, max_size=5),
    refine=st.booleans(),
    fail_count=st.integers(1, 5),
)
def test_best_of_n_and_refine(scores: list[int | None], refine: bool, fail_count: int) -> None:
    # None: that attempt's LM call fails.
    replies: list[Any] = [
        RuntimeError("model exploded") if s is None else {"answer": str(s)} for s in scores
    ]

    def reward(inputs: dict[str, Any], pred: Any) -> tuple[float, str]:
        return float(pred.answer), f"scored {pred.answer}"

    kind = dsx.Refine if refine else dsx.BestOfN
    agree(
        both(
            lambda: kind(
                dsx.Predict("question -> answer"),
                N=len(scores),
                reward_fn=reward,
                threshold=4,
                fail_count=fail_count,
            ),
            replies,
            question="q?",
        )
    )
