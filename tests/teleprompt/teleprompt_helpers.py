"""Shared scripted programs for the optimizer tests."""

from __future__ import annotations

import re
from typing import Any

import dsx
from dsx.testing import FunctionLM


def field_of(messages: list[dict[str, Any]], name: str) -> str:
    """The value of input ``name`` in the last user message."""
    text = messages[-1]["content"]
    match = re.search(rf"<<< {name} >>>\n(.*?)(?:\n\n<<< |\n\nReply with|\Z)", text, re.S)
    return match.group(1) if match else ""


def parity_lm(
    *, wrong: set[str] = frozenset(), fail: set[str] = frozenset(), calls=None
) -> FunctionLM:
    """Answers "yes" for questions with "even", else "no"; wrong/fail list questions it gets wrong or raises on."""

    def respond(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        q = field_of(messages, "question")
        if calls is not None:
            calls.append((q, kwargs, messages))
        if q in fail:
            raise ValueError(f"cannot answer {q}")
        answer = "yes" if "even" in q else "no"
        if q in wrong:
            answer = "maybe"
        return {"answer": answer}

    return FunctionLM(respond)


def parity_set(n: int, start: int = 0) -> list[dsx.Example]:
    return [
        dsx.Example(
            question=f"{'even' if i % 2 == 0 else 'odd'} {i}", answer="yes" if i % 2 == 0 else "no"
        ).with_inputs("question")
        for i in range(start, start + n)
    ]


def demo_questions(program: dsx.Module) -> dict[str, list[str]]:
    return {name: [d["question"] for d in p.demos] for name, p in program.named_predictors()}
