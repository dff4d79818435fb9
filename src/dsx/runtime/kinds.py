"""The module kinds a ``.dsx`` file may declare (``answer = ChainOfThought(QA)``): each
runtime class says, in its ``dsx_kind`` attribute, how a declaration builds it — whether
it takes a signature, which settings, which outputs it adds to the signature's, whether it
wraps another member — and :func:`registry` collects them. The checker, the editor and
both ways of running a program read this one registry, so a kind cannot be known to one
and not the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["LM_CONFIG", "KindInfo", "kind_classes", "registry"]

#: The LM settings every predictor kind takes (``Predict(QA, temperature = 0)``).
LM_CONFIG = frozenset({"temperature", "max_tokens", "n", "top_p", "stop", "seed", "rollout_id"})


@dataclass(frozen=True)
class KindInfo:
    """A built-in sub-module kind: how a declaration builds it and what calling it returns."""

    name: str
    takes_signature: bool
    kwargs: frozenset[str]  # the settings a declaration may pass (besides `lm`)
    extra_outputs: tuple[str, ...] = ()  # outputs it adds to its signature's
    wraps_module: bool = False  # Refine / BestOfN: `module = <member>`
    doc: str = ""


def kind_classes() -> tuple[type[Any], ...]:
    """The runtime classes a ``.dsx`` declaration can name, in the order editors list them."""
    from dsx.runtime.best_of_n import BestOfN, Refine
    from dsx.runtime.code_agents import CodeAct, ProgramOfThought
    from dsx.runtime.predict import ChainOfThought, Predict
    from dsx.runtime.react import ReAct
    from dsx.runtime.retrieve import Retrieve

    return (Predict, ChainOfThought, ReAct, ProgramOfThought, CodeAct, Retrieve, Refine, BestOfN)


def registry() -> dict[str, KindInfo]:
    """Kind name -> what its class declares (``cls.dsx_kind``)."""
    return {cls.dsx_kind.name: cls.dsx_kind for cls in kind_classes()}
