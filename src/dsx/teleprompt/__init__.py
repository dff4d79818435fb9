"""Optimizers ("teleprompters"): they take a program and return it with new learned state."""

from __future__ import annotations

from dsx.teleprompt.base import Teleprompter as Teleprompter
from dsx.teleprompt.bootstrap import BootstrapFewShot as BootstrapFewShot
from dsx.teleprompt.labeled import LabeledFewShot as LabeledFewShot

__all__ = ["BootstrapFewShot", "LabeledFewShot", "Teleprompter", "get_optimizer"]


def get_optimizer(name: str) -> type[Teleprompter] | None:
    """The optimizer class called ``name``, or ``None`` if this dsx does not have it yet."""
    import dsx.teleprompt as tp

    return getattr(tp, name, None)
