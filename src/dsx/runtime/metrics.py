"""Metrics: the built-ins, and how dsx calls any metric.

A metric is a function ``(example, prediction)`` or ``(example, prediction, trace)``
returning a number or a bool (a ``Prediction`` with a ``score`` field works too).
:func:`call_metric` calls either form. ``trace`` is ``None`` during evaluation and the
list of ``(predictor, inputs, outputs)`` calls while an optimizer bootstraps demos — the
DSPy convention that lets one metric return a score for Evaluate and a strict pass/fail
for bootstrapping.

The built-ins are factories: ``exact_match()`` (or ``exact_match(field="label")``) returns
a metric. ``answer_exact_match`` and ``answer_passage_match`` are DSPy's plain-function
forms.
"""

from __future__ import annotations

import functools
import inspect
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable
from typing import Any

from dsx.errors import DsxError

__all__ = [
    "BUILTIN_METRICS",
    "PREDICTION_FIELDS",
    "Metric",
    "answer_exact_match",
    "answer_in_context",
    "answer_passage_match",
    "call_metric",
    "exact_match",
    "f1",
    "normalize_text",
    "passage_match",
    "prediction_fields",
    "score_of",
]

Metric = Callable[..., Any]

_PUNCT = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_text(text: Any) -> str:
    """Lower-case, strip accents, punctuation, articles and extra whitespace (SQuAD style)."""
    s = unicodedata.normalize("NFD", str(text))
    s = "".join(ch for ch in s if unicodedata.category(ch) != "Mn").lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


# -- calling metrics -----------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _takes_trace(metric: Metric) -> bool:
    try:
        params = inspect.signature(metric).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: assume the DSPy form
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3 or any(p.kind is p.VAR_POSITIONAL for p in params)


def call_metric(metric: Metric, example: Any, prediction: Any, trace: Any = None) -> Any:
    """Call ``metric`` with ``trace`` if it takes a third argument, else with two."""
    try:
        takes = _takes_trace(metric)
    except TypeError:  # unhashable callable
        takes = True
    if takes:
        return metric(example, prediction, trace)
    return metric(example, prediction)


def score_of(value: Any) -> float:
    """A metric's return value as a float (bools count 1/0)."""
    if value is None:
        raise DsxError("The metric returned None; it must return a number or a bool")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DsxError(
            f"The metric returned {type(value).__name__} {value!r}; it must return a number "
            "or a bool"
        ) from None


def _inline(metric: Metric) -> Metric:
    # Built-ins are pure and fast: the batch engine calls them on the event loop instead of
    # handing them to a worker thread.
    metric._dsx_inline = True  # type: ignore[attr-defined]
    return metric


# -- the built-ins ---------------------------------------------------------------------------


def _answers(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def _gold(example: Any, field: str) -> list[str]:
    try:
        return _answers(example[field])
    except (KeyError, TypeError):
        raise DsxError(
            f"The metric compares the field `{field}`, but the example has no `{field}` "
            f"(it has {sorted(example.keys()) if hasattr(example, 'keys') else '?'}). Pass "
            f"field=... to the metric."
        ) from None


def _f1(a: str, b: str) -> float:
    pa, pb = normalize_text(a).split(), normalize_text(b).split()
    common = sum((Counter(pa) & Counter(pb)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pa), common / len(pb)
    return 2 * precision * recall / (precision + recall)


def exact_match(field: str = "answer", *, frac: float = 1.0) -> Metric:
    """1.0 when the predicted ``field`` equals a gold answer after normalization.

    With ``frac < 1`` it passes when the token F1 reaches ``frac`` instead.
    """

    def metric(example: Any, pred: Any, trace: Any = None) -> float:
        got = str(getattr(pred, field, ""))
        gold = _gold(example, field)
        if frac >= 1.0:
            norm = normalize_text(got)
            return float(any(norm == normalize_text(a) for a in gold))
        return float(max(_f1(got, a) for a in gold) >= frac)

    metric.__name__ = f"exact_match[{field}]"
    return _inline(metric)


def f1(field: str = "answer") -> Metric:
    """Token-level F1 between the predicted ``field`` and the best gold answer (0.0-1.0)."""

    def metric(example: Any, pred: Any, trace: Any = None) -> float:
        got = str(getattr(pred, field, ""))
        return max(_f1(got, a) for a in _gold(example, field))

    metric.__name__ = f"f1[{field}]"
    return _inline(metric)


def passage_match(field: str = "answer", passages: str = "context") -> Metric:
    """1.0 when any retrieved passage (the prediction's ``passages`` field) holds a gold answer."""

    def metric(example: Any, pred: Any, trace: Any = None) -> float:
        texts = [normalize_text(p) for p in getattr(pred, passages, None) or []]
        return float(any(normalize_text(a) in t for a in _gold(example, field) for t in texts))

    metric.__name__ = f"passage_match[{field}]"
    return _inline(metric)


def answer_in_context(field: str = "answer", context: str = "context") -> Metric:
    """1.0 when the predicted answer occurs in the context (the prediction's, else the example's).

    A grounding check: it needs no gold answer.
    """

    def metric(example: Any, pred: Any, trace: Any = None) -> float:
        ctx = getattr(pred, context, None)
        if ctx is None and hasattr(example, "get"):
            ctx = example.get(context)
        joined = normalize_text(
            " ".join(map(str, ctx)) if isinstance(ctx, list | tuple) else ctx or ""
        )
        answer = normalize_text(getattr(pred, field, ""))
        return float(bool(answer) and answer in joined)

    metric.__name__ = f"answer_in_context[{field}]"
    return _inline(metric)


_em_answer = exact_match()
_pm_answer = passage_match()


def answer_exact_match(example: Any, pred: Any, trace: Any = None, frac: float = 1.0) -> float:
    """DSPy's ``answer_exact_match``: exact match on ``answer`` (F1 >= ``frac`` if ``frac < 1``)."""
    if frac >= 1.0:
        return float(_em_answer(example, pred, trace))
    return float(exact_match(frac=frac)(example, pred, trace))


def answer_passage_match(example: Any, pred: Any, trace: Any = None) -> float:
    """DSPy's ``answer_passage_match``: a gold ``answer`` occurs in ``pred.context``."""
    return float(_pm_answer(example, pred, trace))


_inline(answer_exact_match)
_inline(answer_passage_match)

#: For each built-in metric, the settings that name a field of the *prediction* (what a
#: program must output for the metric to score it): the checker reports a program without
#: that output instead of a metric that scores 0 every time (see :func:`prediction_fields`).
PREDICTION_FIELDS: dict[str, tuple[str, ...]] = {
    "exact_match": ("field",),
    "f1": ("field",),
    "passage_match": ("passages",),
    "answer_in_context": ("field",),
}


def prediction_fields(name: str) -> dict[str, str]:
    """The settings of the built-in metric ``name`` that name a prediction field, each with
    its default (read from the metric's signature, so the two cannot drift apart)."""
    params = inspect.signature(BUILTIN_METRICS[name]).parameters
    return {setting: params[setting].default for setting in PREDICTION_FIELDS.get(name, ())}


BUILTIN_METRICS: dict[str, Callable[..., Metric]] = {
    "exact_match": exact_match,
    "f1": f1,
    "passage_match": passage_match,
    "answer_in_context": answer_in_context,
}
