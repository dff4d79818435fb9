"""A prompt-sensitive scripted task for the instruction optimizers.

The task LM answers correctly (the text in upper case) only when the predictor's
instruction mentions "uppercase"; otherwise it answers "no idea". The prompt model proposes
instructions from a fixed list, in order, so only some proposals work.
"""

from __future__ import annotations

import re
from typing import Any

import dsx
from dsx.testing import FunctionLM

PROPOSALS = [
    "Echo the text back exactly.",
    "Write the text in UPPERCASE letters.",
    "Answer carefully and concisely.",
    "Repeat the input word.",
    "Return the word, shouting it in uppercase.",
]
SUMMARY = "Single lowercase words; each answer is the same word in capitals."
WORDS = [
    "apple",
    "pear",
    "fig",
    "plum",
    "kiwi",
    "lime",
    "date",
    "grape",
    "melon",
    "peach",
    "berry",
    "lemon",
    "mango",
    "olive",
    "cherry",
    "guava",
    "papaya",
    "quince",
]


def instruction_of(messages: list[dict[str, Any]]) -> str:
    system = messages[0]["content"]
    return system.split("Your task:\n", 1)[1] if "Your task:" in system else ""


def input_of(messages: list[dict[str, Any]], name: str) -> str:
    m = re.search(
        rf"<<< {name} >>>\n(.*?)(?:\n\n<<< |\n\nReply with|\Z)", messages[-1]["content"], re.S
    )
    return m.group(1) if m else ""


def is_proposal(messages: list[dict[str, Any]]) -> bool:
    return "proposed_instruction" in messages[0]["content"]


def is_summary(messages: list[dict[str, Any]]) -> bool:
    return "<<< observations >>>" in messages[0]["content"]


def is_reflection(messages: list[dict[str, Any]]) -> bool:
    return "new_instruction" in messages[0]["content"]


#: What the scripted reflection LM writes: a working instruction only when the feedback it
#: is shown says "uppercase", else one that does not work.
GOOD_REFLECTION = "Reply with the text in uppercase letters."
BAD_REFLECTION = "Reply with the text, carefully."


def reflect(messages: list[dict[str, Any]]) -> dict[str, str]:
    shown = input_of(messages, "examples_with_feedback")
    return {"new_instruction": GOOD_REFLECTION if "uppercase" in shown else BAD_REFLECTION}


def reflection_lm(prompts: list[str] | None = None) -> FunctionLM:
    def respond(messages: list[dict[str, Any]]) -> Any:
        if prompts is not None:
            prompts.append(messages[-1]["content"])
        return reflect(messages)

    return FunctionLM(respond, model="scripted-reflection-model")


def task_answer(messages: list[dict[str, Any]]) -> dict[str, str]:
    text = input_of(messages, "text")
    return {
        "answer": text.upper() if "uppercase" in instruction_of(messages).lower() else "no idea"
    }


class PromptModel:
    """Proposes ``PROPOSALS`` in order (one per completion) and summarizes data with ``SUMMARY``."""

    def __init__(self, proposals: list[str] | None = None) -> None:
        self.proposals = list(proposals or PROPOSALS)
        self.index = 0
        self.requests: list[tuple[list[dict[str, Any]], dict[str, Any]]] = []

    def __call__(self, messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        self.requests.append((messages, kwargs))
        if is_summary(messages):
            return {"observations": SUMMARY}
        n = int(kwargs.get("n") or 1)
        out = []
        for _ in range(n):
            out.append({"proposed_instruction": self.proposals[self.index % len(self.proposals)]})
            self.index += 1
        return out if n > 1 else out[0]


def prompt_lm(proposals: list[str] | None = None) -> tuple[FunctionLM, PromptModel]:
    script = PromptModel(proposals)
    return FunctionLM(script, model="scripted-prompt-model"), script


def task_lm(calls: list[str] | None = None) -> FunctionLM:
    def respond(messages: list[dict[str, Any]]) -> Any:
        if calls is not None:
            calls.append(instruction_of(messages))
        return task_answer(messages)

    return FunctionLM(respond, model="scripted-task-model")


def both_lm() -> FunctionLM:
    """One LM that is the task model and the prompt model (for `dsx build`)."""
    script = PromptModel()

    def respond(messages: list[dict[str, Any]], **kwargs: Any) -> Any:
        if is_reflection(messages):  # GEPA: the build's metric gives no feedback, so propose
            return {"new_instruction": "Write the text in UPPERCASE letters."}
        if is_proposal(messages) or is_summary(messages):
            return script(messages, **kwargs)
        return task_answer(messages)

    return FunctionLM(respond, model="scripted")


def dataset(n: int, start: int = 0) -> list[dsx.Example]:
    return [
        dsx.Example(text=w, answer=w.upper()).with_inputs("text") for w in WORDS[start : start + n]
    ]


def exact(example: Any, pred: Any, trace: Any = None) -> bool:
    return example.answer == pred.answer


def echo_program() -> dsx.Predict:
    return dsx.Predict(dsx.Signature("text -> answer", "Repeat the text."))
