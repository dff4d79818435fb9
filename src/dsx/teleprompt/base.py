"""The optimizer interface: ``compile(student, *, trainset, teacher=None, valset=None)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dsx.runtime.module import Module

__all__ = ["Teleprompter"]


class Teleprompter:
    """Base class of optimizers. ``compile`` returns a *new* program; the student is untouched."""

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Any],
        teacher: Module | None = None,
        valset: Sequence[Any] | None = None,
    ) -> Module:
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """The settings that define this optimizer's result (for build caching)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and _jsonable(v)}


def _jsonable(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list | dict)
