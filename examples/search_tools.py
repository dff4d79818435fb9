"""Python helpers used by the .dsx examples (tools, metrics, a toy search)."""

from __future__ import annotations

CORPUS = [
    "Paris is the capital and largest city of France.",
    "Mount Everest is Earth's highest mountain above sea level, at 8,849 m.",
    "Python was created by Guido van Rossum and first released in 1991.",
    "The Eiffel Tower is in Paris and was completed in 1889.",
]


def search(query: str, k: int = 3) -> list[str]:
    """Return the passages sharing the most words with the query."""
    words = set(query.lower().split())
    ranked = sorted(CORPUS, key=lambda p: -len(words & set(p.lower().split())))
    return ranked[:k]


def calculator(expression: str) -> float:
    """Evaluate an arithmetic expression such as '2 * (3 + 4)'."""
    allowed = set("0123456789+-*/(). ")
    if not set(expression) <= allowed:
        raise ValueError(f"only arithmetic is allowed, got {expression!r}")
    return float(eval(expression, {"__builtins__": {}}, {}))


def exact_match(example, pred, trace=None) -> bool:
    return str(example.answer).strip().lower() == str(pred.answer).strip().lower()


def is_short(example, pred) -> float:
    """A reward for Refine: 1.0 when the summary has at most 30 words."""
    return 1.0 if len(str(pred.summary).split()) <= 30 else 0.0
