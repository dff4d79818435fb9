"""Write dspy_saved_classify.json and dspy_saved_classify_messages.json with real DSPy.

Run with the interpreter that has DSPy 3.4.1 (the bench environment), from the repository
root:

    .venv-bench/bin/python tests/runtime/data/make_dspy_saved_classify.py

It builds the few-shot classifier of the migration suite, gives it demos (LabeledFewShot),
new instructions and an LM of its own, saves it with DSPy's ``program.save`` and records the
messages DSPy's ChatAdapter formats for one call of each predictor. Nothing is sent to an LM.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import dspy

HERE = Path(__file__).parent


class Classify(dspy.Signature):
    """Classify the sentiment of a review."""

    review: str = dspy.InputField()
    sentiment: Literal["positive", "negative"] = dspy.OutputField()
    confidence: float = dspy.OutputField()


class Triage(dspy.Module):
    def __init__(self):
        super().__init__()
        self.classify = dspy.Predict(Classify)
        self.explain = dspy.ChainOfThought("review, sentiment -> explanation")

    def forward(self, review):
        sentiment = self.classify(review=review).sentiment
        return self.explain(review=review, sentiment=sentiment)


def main() -> None:
    trainset = [
        dspy.Example(review="Loved it", sentiment="positive", confidence=0.9).with_inputs("review"),
        dspy.Example(review="Awful", sentiment="negative", confidence=0.8).with_inputs("review"),
    ]
    program = dspy.LabeledFewShot(k=2).compile(Triage(), trainset=trainset)
    program.classify.signature = program.classify.signature.with_instructions(
        "Classify the review's sentiment.\nAnswer with a calibrated confidence."
    )
    program.explain.predict.lm = dspy.LM(
        "openai/gpt-4o-mini", temperature=0.2, max_tokens=50, api_key="sk-not-saved"
    )
    program.save(str(HERE / "dspy_saved_classify.json"))

    adapter = dspy.ChatAdapter()
    loaded = Triage()
    loaded.load(str(HERE / "dspy_saved_classify.json"))
    messages = {
        "classify": adapter.format(
            loaded.classify.signature, loaded.classify.demos, {"review": "Great film"}
        ),
        "explain": adapter.format(
            loaded.explain.predict.signature,
            loaded.explain.predict.demos,
            {"review": "Great film", "sentiment": "positive"},
        ),
    }
    (HERE / "dspy_saved_classify_messages.json").write_text(
        json.dumps(messages, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
