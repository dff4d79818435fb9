"""The `make demo` program: a small multi-step dsx program run on a scripted LM.

No API key or network is needed: answers come from ``dsx.testing.FunctionLM``, which
plays the part of the model. Swap in ``dsx.LM("openai/gpt-4o-mini")`` to run it for real.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import dsx
from dsx.testing import FunctionLM

FACTS = {
    "Paris": "Paris is the capital and largest city of France.",
    "Everest": "Mount Everest is Earth's highest mountain above sea level, at 8,849 m.",
    "Python": "Python was created by Guido van Rossum and first released in 1991.",
}


class ExtractTopic(dsx.Signature):
    """Name the single entity the question is about."""

    question: str = dsx.InputField()
    topic: str = dsx.OutputField(desc="one word")


class Answer(dsx.Signature):
    """Answer from the context with a short factoid and a confidence label."""

    context: list[str] = dsx.InputField(desc="may contain relevant facts")
    question: str = dsx.InputField()
    answer: str = dsx.OutputField(desc="often between 1 and 5 words")
    confidence: Literal["low", "medium", "high"] = dsx.OutputField()


class FactQA(dsx.Module):
    def __init__(self) -> None:
        self.topic = dsx.Predict(ExtractTopic)
        self.answer = dsx.ChainOfThought(Answer)

    def forward(self, question: str) -> dsx.Prediction:
        topic = self.topic(question=question).topic
        context = [FACTS.get(topic, "No facts found.")]
        return self.answer(context=context, question=question)


def scripted_model(messages: list[dict]) -> dict:
    """Stands in for a real LM: reads the request, answers in the requested fields."""
    system, request = messages[0]["content"], messages[-1]["content"]
    if "<<< topic >>>" in system:
        topic = next((t for t in FACTS if t.lower() in request.lower()), "unknown")
        return {"topic": topic}
    fact = request.split("<<< context >>>\n[1] ", 1)[1].split("\n", 1)[0]
    if fact.startswith("No facts"):
        return {"reasoning": "The context has nothing relevant.", "answer": "I don't know", "confidence": "low"}
    answer = {"Paris": "France", "Mount": "8,849 m", "Python": "Guido van Rossum"}[fact.split()[0]]
    return {"reasoning": f"The context says: {fact}", "answer": answer, "confidence": "high"}


def main() -> None:
    print("dsx demo — running on a scripted LM (dsx.testing.FunctionLM), no network needed.\n")
    dsx.configure(lm=FunctionLM(scripted_model, model="scripted"))
    program = FactQA()
    questions = [
        "Which country is Paris the capital of?",
        "How high is Everest?",
        "Who created Python?",
        "What is the airspeed of an unladen swallow?",
    ]
    for question in questions:
        pred = program(question=question)
        tokens = sum(u.get("total_tokens", 0) for u in pred.get_lm_usage().values())
        print(f"Q: {question}\nA: {pred.answer}  (confidence: {pred.confidence}, {tokens} tokens)")
        print(f"   reasoning: {pred.reasoning}\n")

    results = program.batch([{"question": q} for q in questions], num_threads=4)
    print(f"batch of {len(results)} ran concurrently: {[r.answer for r in results]}\n")

    print("The prompt sent for the last answer step:")
    print(program.answer.predict.render(context=["..."], question=questions[0])[0]["content"])

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "factqa.json"
        program.topic.demos = [dsx.Example(question="Where is Paris?", topic="Paris")]
        program.save(path)
        restored = FactQA()
        restored.load(path)
        print(f"\nSaved and reloaded state: {len(restored.topic.demos)} demo(s) on `topic`.")


if __name__ == "__main__":
    main()
