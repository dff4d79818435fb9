"""Optimizers ("teleprompters"): they take a program and return a new one with learned state.

:data:`OPTIMIZERS` is the one registry of what a ``.dsx`` ``optimize`` block can name;
:func:`optimizer_info` describes an optimizer's settings (read off its constructor), which
the checker, the editor's completion and ``dsx build`` all use.
"""

from __future__ import annotations

from functools import cache

from dsx.teleprompt._registry import OptimizerInfo as OptimizerInfo
from dsx.teleprompt._registry import SettingInfo as SettingInfo
from dsx.teleprompt._registry import describe_optimizer
from dsx.teleprompt.base import Budget as Budget
from dsx.teleprompt.base import OptimizerSettingError as OptimizerSettingError
from dsx.teleprompt.base import Teleprompter as Teleprompter
from dsx.teleprompt.bootstrap import BootstrapFewShot as BootstrapFewShot
from dsx.teleprompt.copro import COPRO as COPRO
from dsx.teleprompt.ensemble import Ensemble as Ensemble
from dsx.teleprompt.ensemble import EnsembledProgram as EnsembledProgram
from dsx.teleprompt.ensemble import majority as majority
from dsx.teleprompt.finetune import BootstrapFinetune as BootstrapFinetune
from dsx.teleprompt.gepa import GEPA as GEPA
from dsx.teleprompt.gepa import GEPAResults as GEPAResults
from dsx.teleprompt.knn import KNN as KNN
from dsx.teleprompt.knn import KNNFewShot as KNNFewShot
from dsx.teleprompt.labeled import LabeledFewShot as LabeledFewShot
from dsx.teleprompt.mipro import MIPROv2 as MIPROv2
from dsx.teleprompt.mipro import Trial as Trial
from dsx.teleprompt.random_search import (
    BootstrapFewShotWithRandomSearch as BootstrapFewShotWithRandomSearch,
)
from dsx.teleprompt.random_search import Candidate as Candidate
from dsx.teleprompt.simba import SIMBA as SIMBA
from dsx.teleprompt.simba import SimbaCandidate as SimbaCandidate

__all__ = [
    "COPRO",
    "KNN",
    "OPTIMIZERS",
    "PLANNED_OPTIMIZERS",
    "SIMBA",
    "BootstrapFewShot",
    "BootstrapFinetune",
    "BootstrapFewShotWithRandomSearch",
    "Budget",
    "Candidate",
    "Ensemble",
    "EnsembledProgram",
    "GEPA",
    "GEPAResults",
    "KNNFewShot",
    "LabeledFewShot",
    "MIPROv2",
    "OptimizerInfo",
    "OptimizerSettingError",
    "SettingInfo",
    "SimbaCandidate",
    "Teleprompter",
    "Trial",
    "get_optimizer",
    "majority",
    "optimizer_info",
    "optimizer_names",
]

#: The optimizers this dsx has, by the name a ``.dsx`` ``optimize`` block uses.
OPTIMIZERS: dict[str, type[Teleprompter]] = {
    "LabeledFewShot": LabeledFewShot,
    "BootstrapFewShot": BootstrapFewShot,
    "BootstrapFewShotWithRandomSearch": BootstrapFewShotWithRandomSearch,
    "KNNFewShot": KNNFewShot,
    "Ensemble": Ensemble,
    "MIPROv2": MIPROv2,
    "COPRO": COPRO,
    "GEPA": GEPA,
    "SIMBA": SIMBA,
    "BootstrapFinetune": BootstrapFinetune,
}

#: DSPy optimizers dsx does not have yet: a ``.dsx`` file naming one gets a clear error.
PLANNED_OPTIMIZERS: dict[str, str] = {
    "BetterTogether": "alternates prompt optimization and BootstrapFinetune on one program",
}


def get_optimizer(name: str) -> type[Teleprompter] | None:
    """The optimizer class called ``name``, or ``None`` if this dsx does not have it yet."""
    return OPTIMIZERS.get(name)


@cache
def optimizer_info(name: str) -> OptimizerInfo | None:
    """What optimizer ``name`` is and which settings it takes (``None``: no such optimizer).

    A planned optimizer (:data:`PLANNED_OPTIMIZERS`) has ``available=False``.
    """
    if name in OPTIMIZERS:
        return describe_optimizer(name, OPTIMIZERS[name])
    if name in PLANNED_OPTIMIZERS:
        return describe_optimizer(name, None, PLANNED_OPTIMIZERS[name])
    return None


def optimizer_names(*, planned: bool = False) -> list[str]:
    """The names of the available optimizers (and the planned ones with ``planned=True``)."""
    return [*OPTIMIZERS, *(PLANNED_OPTIMIZERS if planned else ())]
