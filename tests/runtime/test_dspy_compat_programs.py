"""DSPy-style programs run unchanged through dsx.compat.dspy (issue 21, item 9).

Each program below is written as a DSPy user writes it — ``import dspy`` names, DSPy's module
paths, its ``DummyLM`` — and runs on dsx through the compatibility layer, with DSPy's prompt
layout where the program asks for ``dspy.ChatAdapter()``.
"""

from __future__ import annotations

import importlib
import sys
from typing import Literal

import pytest
from dsx.compat.dspy.evaluate import Evaluate
from dsx.compat.dspy.teleprompt import LabeledFewShot
from dsx.compat.dspy.utils.dummies import DummyLM

import dsx
import dsx.compat.dspy as dspy

CORPUS = {
    "france": "Paris is the capital of France.",
    "paris": "Paris has about two million inhabitants.",
    "eiffel": "The Eiffel Tower is in Paris.",
}


def search(query: str, k: int = 2) -> list[str]:
    """Search a tiny corpus."""
    words = query.lower().replace("?", "").split()
    return [text for key, text in CORPUS.items() if key in words][:k]


class RAG(dspy.Module):
    def __init__(self):
        self.respond = dspy.ChainOfThought("context, question -> response")

    def forward(self, question):
        context = search(question)
        return self.respond(context=context, question=question)


class MultiHop(dspy.Module):
    def __init__(self, hops=2):
        self.generate_query = [
            dspy.ChainOfThought("context, question -> query") for _ in range(hops)
        ]
        self.answer = dspy.ChainOfThought("context, question -> answer")

    def forward(self, question):
        context = []
        for generate in self.generate_query:
            query = generate(context=context, question=question).query
            context = list(dict.fromkeys(context + search(query)))
        return self.answer(context=context, question=question)


class Classify(dspy.Signature):
    """Classify the sentiment of a review."""

    review: str = dspy.InputField()
    sentiment: Literal["positive", "negative"] = dspy.OutputField()
    confidence: float = dspy.OutputField()


@pytest.fixture(autouse=True)
def dspy_layout():
    with dspy.context(adapter=dspy.ChatAdapter()):
        yield


def test_rag():
    lm = DummyLM([{"reasoning": "The context says so.", "response": "Paris"}])
    with dspy.context(lm=lm):
        pred = RAG()(question="What is the capital of france?")
    assert pred.response == "Paris" and pred.reasoning == "The context says so."
    user = lm.history[-1]["messages"][-1]["content"]
    assert user.startswith("[[ ## context ## ]]\n«Paris is the capital of France.»")
    assert "`[[ ## reasoning ## ]]`, then `[[ ## response ## ]]`" in user


def test_multi_hop():
    lm = DummyLM(
        [
            {"reasoning": "r", "query": "france"},
            {"reasoning": "r", "query": "paris eiffel"},
            {"reasoning": "r", "answer": "Paris"},
        ]
    )
    with dspy.context(lm=lm):
        pred = MultiHop()(question="Where is the tower?")
    assert pred.answer == "Paris"
    last = lm.history[-1]["messages"][-1]["content"]
    assert "[1] «Paris is the capital of France.»" in last
    assert "[3] «The Eiffel Tower is in Paris.»" in last


def test_classifier_with_few_shot_and_evaluate():
    trainset = [
        dspy.Example(review="Loved it", sentiment="positive", confidence=0.9).with_inputs("review"),
        dspy.Example(review="Awful", sentiment="negative", confidence=0.8).with_inputs("review"),
    ]
    program = LabeledFewShot(k=2).compile(dspy.Predict(Classify), trainset=trainset)
    assert len(program.demos) == 2
    lm = DummyLM(
        {
            "Great": {"sentiment": "positive", "confidence": 0.95},
            "Terrible": {"sentiment": "negative", "confidence": 0.7},
        }
    )
    devset = [
        dspy.Example(review="Great film", sentiment="positive").with_inputs("review"),
        dspy.Example(review="Terrible plot", sentiment="negative").with_inputs("review"),
    ]

    def metric(example, pred, trace=None):
        return example.sentiment == pred.sentiment

    with dspy.context(lm=lm):
        result = Evaluate(devset=devset, metric=metric, num_threads=1)(program)
    assert result.score == 100.0
    messages = lm.history[-1]["messages"]
    assert [m["role"] for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert messages[2]["content"].startswith("[[ ## sentiment ## ]]\n")


def test_react_agent():
    def get_population(city: str) -> str:
        """The population of a city."""
        return {"paris": "2.1 million"}.get(city.lower(), "unknown")

    lm = DummyLM(
        [
            {
                "next_thought": "look it up",
                "next_tool_name": "get_population",
                "next_tool_args": {"city": "Paris"},
            },
            {"next_thought": "done", "next_tool_name": "finish", "next_tool_args": {}},
            {"reasoning": "the tool said so", "answer": "2.1 million"},
        ]
    )
    agent = dspy.ReAct("question -> answer", tools=[dspy.Tool(get_population)])
    with dspy.context(lm=lm):
        pred = agent(question="How many people live in Paris?")
    assert pred.answer == "2.1 million"
    assert pred.trajectory[0]["observation"] == "2.1 million"


def test_dspy_s_module_paths_resolve_to_dsx():
    from dsx.compat.dspy.adapters.types.tool import ToolCalls, convert_input_schema_to_tool_args
    from dsx.compat.dspy.primitives.example import Example
    from dsx.compat.dspy.signatures.signature import Signature
    from dsx.compat.dspy.utils.exceptions import LMRateLimitError, is_retryable_lm_error

    assert ToolCalls is dsx.ToolCalls and Example is dsx.Example and Signature is dsx.Signature
    assert LMRateLimitError is dsx.RateLimitError and is_retryable_lm_error(LMRateLimitError())
    assert convert_input_schema_to_tool_args({"properties": {}}) == ({}, {}, {})
    assert (
        dspy.ChatAdapter is dsx.DSPyChatAdapter
        and dspy.BootstrapRS is dsx.BootstrapFewShotWithRandomSearch
    )
    assert "teleprompt" in dir(dspy) and "Predict" in dir(dspy)


def test_a_dspy_feature_dsx_lacks_says_what_to_use():
    with pytest.raises(
        AttributeError, match="XMLAdapter has no dsx equivalent: use dspy.ChatAdapter"
    ):
        dspy.XMLAdapter  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'Nonsense'"):
        dspy.Nonsense  # noqa: B018


def test_install_makes_import_dspy_load_the_compat_layer():
    assert "dspy" not in sys.modules
    dspy.install()
    try:
        real = importlib.import_module("dspy")
        from dspy.teleprompt import BootstrapFewShot
        from dspy.utils.dummies import DummyLM as Dummy

        assert real is dspy and BootstrapFewShot is dsx.BootstrapFewShot and Dummy is DummyLM
    finally:
        dspy.uninstall()
    assert "dspy" not in sys.modules and "dspy.teleprompt" not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("dspy")
