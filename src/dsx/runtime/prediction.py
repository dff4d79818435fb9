"""``Prediction``: what a module returns — output fields as attributes, plus completions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from dsx.runtime.example import Example

__all__ = ["Completions", "Prediction"]


class Prediction(Example):
    """The outputs of a module call.

    Output fields are attributes (``pred.answer``). When the LM returned several
    completions (``n > 1``) they are in ``pred.completions``; the attributes show the
    first. ``get_lm_usage()`` gives the tokens spent producing it, per model.
    """

    __slots__ = ("_completions", "_lm_usage")

    def __init__(self, base: Mapping[str, Any] | Example | None = None, **kwargs: Any) -> None:
        super().__init__(base, **kwargs)
        object.__setattr__(self, "_completions", None)
        object.__setattr__(self, "_lm_usage", None)

    def __setattr__(self, key: str, value: Any) -> None:
        if key in ("_completions", "_lm_usage"):
            object.__setattr__(self, key, value)
        else:
            super().__setattr__(key, value)

    @classmethod
    def from_completions(
        cls, completions: Sequence[Mapping[str, Any]] | Completions, signature: Any = None
    ) -> Prediction:
        comps = (
            completions
            if isinstance(completions, Completions)
            else Completions(completions, signature)
        )
        pred = cls(comps[0]._store if len(comps) else {})
        object.__setattr__(pred, "_completions", comps)
        return pred

    @property
    def completions(self) -> Completions:
        if self._completions is None:
            object.__setattr__(self, "_completions", Completions([dict(self._store)]))
        return self._completions

    def get_lm_usage(self) -> dict[str, dict[str, int]]:
        return dict(self._lm_usage or {})

    def set_lm_usage(self, usage: dict[str, dict[str, int]]) -> None:
        object.__setattr__(self, "_lm_usage", usage)

    def copy(self, **kwargs: Any) -> Prediction:
        new = super().copy(**kwargs)
        object.__setattr__(new, "_completions", self._completions)
        object.__setattr__(new, "_lm_usage", self._lm_usage)
        return new  # type: ignore[return-value]

    # Numeric use, e.g. a metric that returns a Prediction with a score.
    def __float__(self) -> float:
        if "score" not in self._store:
            raise TypeError("Only a Prediction with a `score` field converts to float")
        return float(self._store["score"])


class Completions:
    """Several completions of the same call: ``completions.answer`` is a list of answers."""

    __slots__ = ("_items", "signature")

    def __init__(self, items: Sequence[Mapping[str, Any]], signature: Any = None) -> None:
        self._items = [dict(item) for item in items]
        self.signature = signature

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Prediction]:
        return (Prediction(item) for item in self._items)

    def __getitem__(self, index: int) -> Prediction:
        return Prediction(self._items[index])

    def __getattr__(self, key: str) -> list[Any]:
        if key.startswith("_"):
            raise AttributeError(key)
        if self._items and key not in self._items[0]:
            raise AttributeError(f"Completions have no field {key!r}")
        return [item.get(key) for item in self._items]

    def items(self) -> list[tuple[str, list[Any]]]:
        keys = self._items[0].keys() if self._items else []
        return [(k, [item.get(k) for item in self._items]) for k in keys]

    def __repr__(self) -> str:
        return f"Completions({self._items!r})"
