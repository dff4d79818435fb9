"""``Passage``: one retrieved text with its score, id and metadata.

A passage *is* a string (a ``str`` subclass), so ``Retrieve(k)(q).passages`` stays the list
of strings DSPy programs expect — it formats, compares, hashes and serialises as its text —
while ``.score``, ``.id`` and ``.metadata`` carry what the engine said about it. DSPy's
dict-style access (``psg["text"]``, ``psg.long_text``, ``psg.pid``) works too.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["Passage", "to_passage"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class Passage(str):
    """A retrieved passage: the text itself, plus ``score``, ``id`` and ``metadata``.

    Args:
        text: the passage's text (what the string is).
        score: the engine's relevance score (higher is better), when it gives one.
        id: the passage's id in its index (ColBERTv2's ``pid``, a corpus position, a
            vector store's point id).
        metadata: anything else the engine returned (``rank``, ``prob``, a payload).

    Example:
        >>> p = Passage("Paris is in France.", score=0.93, id=7)
        >>> p.upper(), p.score, p["pid"]
        ('PARIS IS IN FRANCE.', 0.93, 7)
    """

    score: float | None
    id: Any
    metadata: Mapping[str, Any]

    def __new__(
        cls,
        text: str,
        *,
        score: float | None = None,
        id: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Passage:
        self = super().__new__(cls, text)
        self.score = None if score is None else float(score)
        self.id = id
        self.metadata = MappingProxyType(dict(metadata)) if metadata else _EMPTY
        return self

    @property
    def text(self) -> str:
        """The text as a plain ``str``."""
        return str.__str__(self)

    @property
    def long_text(self) -> str:
        """DSPy's name for the text."""
        return self.text

    @property
    def pid(self) -> Any:
        """DSPy's (ColBERTv2's) name for the id."""
        return self.id

    @property
    def rank(self) -> int | None:
        """The 1-based rank the engine gave, when it gave one."""
        rank = self.metadata.get("rank")
        return rank if isinstance(rank, int) else None

    def to_dict(self) -> dict[str, Any]:
        """``{"text", "score", "id", **metadata}`` — JSON-able when the metadata is."""
        return {**self.metadata, "text": self.text, "score": self.score, "id": self.id}

    # -- DSPy's dotdict-style access ------------------------------------------------------
    def _lookup(self, key: str) -> Any:
        if key in ("text", "long_text"):
            return self.text
        if key in ("id", "pid"):
            return self.id
        if key == "score":
            return self.score
        return self.metadata[key]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):  # str indexing never takes a string: no ambiguity
            return self._lookup(key)
        return str.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """``psg.get("score")`` as on DSPy's dotdicts."""
        try:
            return self._lookup(key)
        except KeyError:
            return default

    def keys(self) -> Iterator[str]:
        """The dict-style keys: text, long_text, score, id, pid and the metadata's."""
        yield from ("text", "long_text", "score", "id", "pid")
        yield from self.metadata

    def __repr__(self) -> str:
        shown = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        parts = [repr(shown)]
        if self.score is not None:
            parts.append(f"score={self.score:.4g}")
        if self.id is not None:
            parts.append(f"id={self.id!r}")
        if self.metadata:
            parts.append(f"metadata={dict(self.metadata)!r}")
        return f"Passage({', '.join(parts)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.text, self.score, self.id, dict(self.metadata)))

    def __copy__(self) -> Passage:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Passage:
        return self  # immutable


def _rebuild(text: str, score: float | None, id: Any, metadata: dict[str, Any]) -> Passage:
    return Passage(text, score=score, id=id, metadata=metadata)


_TEXT_KEYS = ("text", "long_text", "content", "document")
_ID_KEYS = ("id", "pid")


def to_passage(item: Any) -> Passage:
    """Make a :class:`Passage` of what a retriever function returned: a string, a dict
    with a ``text`` / ``long_text`` key (DSPy's ``dotdict`` too), or an object with such an
    attribute."""
    if isinstance(item, Passage):
        return item
    if isinstance(item, str):
        return Passage(item)
    if isinstance(item, Mapping):
        data = dict(item)
        text = next((data[k] for k in _TEXT_KEYS if data.get(k) is not None), None)
        if text is None:
            return Passage(str(item))
        for k in _TEXT_KEYS:
            data.pop(k, None)
        score = data.pop("score", None)
        pid = next((data[k] for k in _ID_KEYS if k in data), None)
        for k in _ID_KEYS:
            data.pop(k, None)
        return Passage(
            str(text),
            score=score if isinstance(score, int | float) else None,
            id=pid,
            metadata=data,
        )
    text = getattr(item, "long_text", None) or getattr(item, "text", None)
    if isinstance(text, str):
        score = getattr(item, "score", None)
        return Passage(
            text,
            score=score if isinstance(score, int | float) else None,
            id=getattr(item, "pid", None) or getattr(item, "id", None),
        )
    return Passage(str(item))
