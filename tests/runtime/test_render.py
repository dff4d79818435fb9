"""``render``: the messages a module would send, without calling the LM."""

from __future__ import annotations

import pytest

import dsx


class Pipeline(dsx.Module):
    def __init__(self) -> None:
        self.rewrite = dsx.Predict("question -> search_query")
        self.answer = dsx.ChainOfThought("context: list[str], question -> answer")

    def forward(self, question: str) -> dsx.Prediction:
        query = self.rewrite(question=question).search_query
        return self.answer(context=[query], question=question)


def _text(messages):
    return "\n".join(str(m["content"]) for m in messages)


def test_chain_of_thought_renders_its_predictor_without_an_lm():
    cot = dsx.ChainOfThought("question -> answer")
    messages = cot.render(question="Who wrote Dune?")
    assert messages == cot.predict.render(question="Who wrote Dune?")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "reasoning" in _text(messages) and "Who wrote Dune?" in _text(messages)


def test_a_module_with_one_predictor_renders_it():
    class Wrapper(dsx.Module):
        def __init__(self) -> None:
            self.inner = dsx.Predict("question -> answer")

        def forward(self, question: str) -> dsx.Prediction:
            return self.inner(question=question)

    assert Wrapper().render(question="q") == Wrapper().inner.render(question="q")
    with pytest.raises(dsx.MissingInputError, match="question"):
        Wrapper().render()


def test_several_predictors_render_those_whose_inputs_are_given():
    program = Pipeline()
    only_rewrite = program.render(question="Who wrote Dune?")
    assert list(only_rewrite) == ["rewrite"]
    both = program.render(question="Who wrote Dune?", context=["Dune is by Frank Herbert."])
    assert list(both) == ["rewrite", "answer.predict"]
    assert both["rewrite"] == program.rewrite.render(question="Who wrote Dune?")
    assert "Frank Herbert" in _text(both["answer.predict"])


@pytest.mark.parametrize(
    ("inputs", "problem"),
    [
        ({}, "no inputs were given"),
        ({"context": ["c"]}, "no predictor has all its inputs among `context`"),
        ({"questoin": "q"}, "no predictor takes the input `questoin`"),
        ({"question": "q", "extra": 1}, "no predictor takes the input `extra`"),
    ],
)
def test_several_predictors_say_which_inputs_each_needs(inputs, problem):
    with pytest.raises(dsx.DsxError) as info:
        Pipeline().render(**inputs)
    message = str(info.value)
    assert problem in message
    assert "`rewrite` needs question; `answer.predict` needs context, question" in message


def test_a_module_without_predictors_has_no_prompt():
    class Empty(dsx.Module):
        def forward(self) -> None:
            return None

    with pytest.raises(dsx.DsxError, match="has no predictors"):
        Empty().render()
