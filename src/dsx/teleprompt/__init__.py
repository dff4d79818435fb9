"""Optimizers ("teleprompters"): they take a program and return a new one with learned state."""

from __future__ import annotations

from dsx.teleprompt.base import Budget as Budget
from dsx.teleprompt.base import Teleprompter as Teleprompter
from dsx.teleprompt.bootstrap import BootstrapFewShot as BootstrapFewShot
from dsx.teleprompt.ensemble import Ensemble as Ensemble
from dsx.teleprompt.ensemble import EnsembledProgram as EnsembledProgram
from dsx.teleprompt.ensemble import majority as majority
from dsx.teleprompt.knn import KNN as KNN
from dsx.teleprompt.knn import KNNFewShot as KNNFewShot
from dsx.teleprompt.labeled import LabeledFewShot as LabeledFewShot
from dsx.teleprompt.random_search import (
    BootstrapFewShotWithRandomSearch as BootstrapFewShotWithRandomSearch,
)
from dsx.teleprompt.random_search import Candidate as Candidate

__all__ = [
    "KNN",
    "OPTIMIZERS",
    "BootstrapFewShot",
    "BootstrapFewShotWithRandomSearch",
    "Budget",
    "Candidate",
    "Ensemble",
    "EnsembledProgram",
    "KNNFewShot",
    "LabeledFewShot",
    "Teleprompter",
    "get_optimizer",
    "majority",
]

#: The optimizers this dsx has, by the name a ``.dsx`` ``optimize`` block uses.
OPTIMIZERS: dict[str, type[Teleprompter]] = {
    "LabeledFewShot": LabeledFewShot,
    "BootstrapFewShot": BootstrapFewShot,
    "BootstrapFewShotWithRandomSearch": BootstrapFewShotWithRandomSearch,
    "KNNFewShot": KNNFewShot,
    "Ensemble": Ensemble,
}


def get_optimizer(name: str) -> type[Teleprompter] | None:
    """The optimizer class called ``name``, or ``None`` if this dsx does not have it yet."""
    return OPTIMIZERS.get(name)
