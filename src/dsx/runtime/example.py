"""``Example``: a dict-like record of field values, with some keys marked as inputs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["Example"]


class Example:
    """A training or evaluation example.

    Behaves like a dict (``ex["q"]``, ``ex.keys()``, ``len(ex)``) and like an object
    (``ex.q``). ``with_inputs("q")`` marks which keys are inputs; ``inputs()`` and
    ``labels()`` split the example accordingly.
    """

    __slots__ = ("_input_keys", "_store", "_version")

    def __init__(self, base: Mapping[str, Any] | Example | None = None, **kwargs: Any) -> None:
        store: dict[str, Any] = {}
        input_keys: frozenset[str] | None = None
        if isinstance(base, Example):
            store.update(base._store)
            input_keys = base._input_keys
        elif base is not None:
            store.update(base)
        store.update(kwargs)
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "_input_keys", input_keys)
        object.__setattr__(self, "_version", 0)

    # -- attribute and item access --------------------------------------------------------
    def __getattr__(self, key: str) -> Any:
        if key.startswith("__") and key.endswith("__"):
            raise AttributeError(key)
        try:
            return self._store[key]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} has no field {key!r}; it has {sorted(self._store)}"
            ) from None

    def __setattr__(self, key: str, value: Any) -> None:
        if key in Example.__slots__:
            object.__setattr__(self, key, value)
            return
        self._store[key] = value
        object.__setattr__(self, "_version", self._version + 1)

    def __delattr__(self, key: str) -> None:
        self.__delitem__(key)

    def __getitem__(self, key: str) -> Any:
        return self._store[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._store[key] = value
        object.__setattr__(self, "_version", self._version + 1)

    def __delitem__(self, key: str) -> None:
        del self._store[key]
        object.__setattr__(self, "_version", self._version + 1)

    def __contains__(self, key: object) -> bool:
        return key in self._store

    def __len__(self) -> int:
        return len(self._store)

    def __iter__(self) -> Iterator[str]:
        return iter(self._store)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Example):
            return self._store == other._store
        if isinstance(other, Mapping):
            return self._store == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(sorted((k, _hashable(v)) for k, v in self._store.items())))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._store.items() if not k.startswith("dsx_"))
        inputs = f" (inputs={sorted(self._input_keys)})" if self._input_keys is not None else ""
        return f"{type(self).__name__}({fields}){inputs}"

    # -- dict API -------------------------------------------------------------------------
    def keys(self, include_dsx: bool = False) -> list[str]:
        return [k for k in self._store if include_dsx or not k.startswith("dsx_")]

    def values(self, include_dsx: bool = False) -> list[Any]:
        return [v for k, v in self._store.items() if include_dsx or not k.startswith("dsx_")]

    def items(self, include_dsx: bool = False) -> list[tuple[str, Any]]:
        return [(k, v) for k, v in self._store.items() if include_dsx or not k.startswith("dsx_")]

    def get(self, key: str, default: Any = None) -> Any:
        return self._store.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._store)

    toDict = to_dict

    # -- inputs and labels ----------------------------------------------------------------
    @property
    def input_keys(self) -> frozenset[str] | None:
        return self._input_keys

    def with_inputs(self, *keys: str) -> Example:
        """A copy with ``keys`` marked as the inputs."""
        new = self.copy()
        object.__setattr__(new, "_input_keys", frozenset(keys))
        return new

    def inputs(self) -> Example:
        """The input fields only (call ``with_inputs`` first)."""
        if self._input_keys is None:
            raise ValueError(
                "This example has no input keys: call example.with_inputs('question', ...) first"
            )
        new = Example({k: v for k, v in self._store.items() if k in self._input_keys})
        object.__setattr__(new, "_input_keys", self._input_keys)
        return new

    def labels(self) -> Example:
        """Every field that is not an input."""
        keys = self._input_keys or frozenset()
        return Example({k: v for k, v in self._store.items() if k not in keys})

    def copy(self, **kwargs: Any) -> Example:
        new = type(self).__new__(type(self))
        object.__setattr__(new, "_store", {**self._store, **kwargs})
        object.__setattr__(new, "_input_keys", self._input_keys)
        object.__setattr__(new, "_version", 0)
        return new

    def without(self, *keys: str) -> Example:
        new = self.copy()
        for key in keys:
            new._store.pop(key, None)
        return new


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list | set | tuple):
        return tuple(_hashable(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value
