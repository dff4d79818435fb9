"""Built-in metrics: ``exact_match``, ``f1``, ``passage_match``, ``answer_in_context``.

Each is a factory: ``exact_match()`` (or ``exact_match(field="label")``) returns a metric
``(example, prediction, trace=None) -> float``.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable
from typing import Any

__all__ = ["BUILTIN_METRICS", "answer_in_context", "exact_match", "f1", "normalize_text", "passage_match"]

Metric = Callable[..., float]


def normalize_text(text: Any) -> str:
    """Lower-case, strip accents, punctuation, articles and extra whitespace."""
    s = unicodedata.normalize("NFD", str(text))
    s = "".join(ch for ch in s if unicodedata.category(ch) != "Mn").lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def _answers(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def exact_match(field: str = "answer") -> Metric:
    def metric(example: Any, pred: Any, trace: Any = None) -> float:
        got = normalize_text(getattr(pred, field, ""))
        return float(any(got == normalize_text(a) for a in _answers(example[field])))

    metric.__name__ = f"exact_match[{field}]"
    return metric


def _f1(a: str, b: str) -> float:
    pa, pb = normalize_text(a).split(), normalize_text(b).split()
    common = sum((Counter(pa) & Counter(pb)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pa), common / len(pb)
    return 2 * precision * recall / (precision + recall)


def f1(field: str = "answer") -> Metric:
    def metric(example: Any, pred: Any, trace: Any = None) -> float:
        got = str(getattr(pred, field, ""))
        return max(_f1(got, a) for a in _answers(example[field]))

    metric.__name__ = f"f1[{field}]"
    return metric


def passage_match(field: str = "answer", passages: str = "context") -> Metric:
    """Whether any retrieved passage contains the gold answer."""

    def metric(example: Any, pred: Any, trace: Any = None) -> float:
        texts = [normalize_text(p) for p in getattr(pred, passages, []) or []]
        return float(any(normalize_text(a) in t for a in _answers(example[field]) for t in texts))

    metric.__name__ = f"passage_match[{field}]"
    return metric


def answer_in_context(field: str = "answer", context: str = "context") -> Metric:
    """Whether the predicted answer occurs in the example's context."""

    def metric(example: Any, pred: Any, trace: Any = None) -> float:
        ctx = example.get(context) if hasattr(example, "get") else None
        joined = normalize_text(" ".join(ctx) if isinstance(ctx, list) else ctx or "")
        return float(normalize_text(getattr(pred, field, "")) in joined)

    metric.__name__ = f"answer_in_context[{field}]"
    return metric


BUILTIN_METRICS: dict[str, Callable[..., Metric]] = {
    "exact_match": exact_match,
    "f1": f1,
    "passage_match": passage_match,
    "answer_in_context": answer_in_context,
}
