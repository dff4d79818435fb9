"""``Ensemble``: one program that runs several and combines their answers.

``Ensemble(reduce_fn=dsx.majority).compile([p1, p2, p3])`` returns a program that calls the
members (concurrently when called async) and reduces their predictions. With ``size`` it
calls a sample of that many members per input — seeded by the optimizer's seed and the
inputs, so the same input always gets the same members.

In an ``optimize`` block (``dsx build``/``dsx optimize``), ``Ensemble(members = 3, base =
"BootstrapFewShot", reducer = "majority")`` optimizes ``members`` copies of the program with
the ``base`` optimizer (seeds ``seed``, ``seed + 1``, ...) and combines them. That result is
learned state: a selector of kind ``"ensemble"`` holding each member's predictor state and
the reducer's *name* (:data:`REDUCERS`), never code (:func:`dump_ensemble`,
:func:`prepare_ensemble`).
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dsx.errors import DsxError, StateError
from dsx.runtime.metrics import normalize_text
from dsx.runtime.module import Module
from dsx.runtime.prediction import Completions, Prediction
from dsx.teleprompt.base import Teleprompter

__all__ = [
    "REDUCERS",
    "Ensemble",
    "EnsembledProgram",
    "check_ensemble",
    "dump_ensemble",
    "majority",
    "prepare_ensemble",
]


def majority(
    predictions: Prediction | Completions | Sequence[Any],
    *,
    normalize: Callable[[Any], Any] | None = normalize_text,
    field: str | None = None,
) -> Prediction:
    """The prediction whose ``field`` value is most common (ties: the first seen).

    ``field`` defaults to the last output field; ``normalize`` maps values before counting
    (``None`` from it drops the value). Takes predictions, or a prediction's completions.
    """
    if isinstance(predictions, Prediction):
        predictions = predictions.completions
    preds = [p if isinstance(p, Prediction) else Prediction(p) for p in predictions]
    if not preds:
        raise DsxError("majority() got no predictions")
    if field is None:
        keys = preds[0].keys()
        if not keys:
            raise DsxError("majority() got predictions without fields")
        field = keys[-1]
    votes: Counter[Any] = Counter()
    first: dict[Any, Prediction] = {}
    for pred in preds:
        value = pred.get(field)
        key = normalize(value) if normalize is not None else value
        if key is None:
            continue
        key = json.dumps(key, sort_keys=True, default=str) if not isinstance(key, str) else key
        votes[key] += 1
        first.setdefault(key, pred)
    if not votes:
        return preds[0]
    best = max(votes, key=lambda k: votes[k])  # max() keeps the first of equal counts
    return first[best]


class EnsembledProgram(Module):
    """Runs its member programs on each input and reduces their predictions."""

    def __init__(
        self,
        programs: Sequence[Module],
        *,
        reduce_fn: Callable[[list[Any]], Any] | None = None,
        size: int | None = None,
        seed: int = 0,
    ) -> None:
        self.programs = list(programs)
        self.reduce_fn = reduce_fn
        self.size = size
        self.seed = seed

    def _members(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Module]:
        if self.size is None or self.size >= len(self.programs):
            return self.programs
        key = json.dumps([args, kwargs], sort_keys=True, default=str)
        return random.Random(f"dsx:{self.seed}:{key}").sample(self.programs, self.size)

    def _reduce(self, outputs: list[Any]) -> Any:
        return self.reduce_fn(outputs) if self.reduce_fn is not None else outputs

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._reduce([p(*args, **kwargs) for p in self._members(args, kwargs)])

    async def aforward(self, *args: Any, **kwargs: Any) -> Any:
        members = self._members(args, kwargs)
        return self._reduce(
            list(await asyncio.gather(*(p.acall(*args, **kwargs) for p in members)))
        )


class Ensemble(Teleprompter):
    """Combine programs into one.

    Args:
        reduce_fn: combines the members' predictions (e.g. :func:`majority`); ``None``
            returns the list.
        size: call a seeded sample of this many members per input (default: all).
        deterministic: accepted for DSPy compatibility (sampling here is always seeded).
        members: with ``compile(program, trainset=...)``, optimize this many copies of the
            program with ``base`` (seeds ``seed``, ``seed + 1``, ...) and combine them; this is
            how an ``optimize`` block uses Ensemble.
        base: the optimizer each member is optimized with (its name, default
            ``"LabeledFewShot"``).
        reducer: the name of a registered reducer (:data:`REDUCERS`: ``"majority"``); what a
            build stores instead of ``reduce_fn``.
        metric: the members' metric (for a ``base`` optimizer that takes one).
        **options: ``seed``, ``max_lm_calls``, ``max_cost``, ``num_threads``,
            ``display_progress``; any other option goes to the ``base`` optimizer.

    ``compile(programs)`` takes a list of programs (copies are used; the inputs are
    untouched) and makes no LM calls; its result is several unrelated programs, which a
    build cannot hold. ``compile(program, trainset=...)`` with ``members`` makes members
    of one program, which ``dsx build`` bakes into the learned state.
    """

    exports_to_ir = True

    @classmethod
    def requires_lm(cls, settings: Mapping[str, Any]) -> bool:
        """As the ``base`` optimizer does (``LabeledFewShot``, the default, calls none)."""
        from dsx.teleprompt import get_optimizer

        base = get_optimizer(str(settings.get("base", "LabeledFewShot")))
        return True if base is None else base.requires_lm(settings)

    #: The base optimizers' common settings, passed on to each member's optimizer.
    forwarded_settings = (
        ("dsx.teleprompt.labeled:LabeledFewShot", frozenset({"k", "sample"})),
        (
            "dsx.teleprompt.bootstrap:BootstrapFewShot",
            frozenset(
                {
                    "metric_threshold",
                    "max_bootstrapped_demos",
                    "max_labeled_demos",
                    "max_rounds",
                    "max_errors",
                }
            ),
        ),
    )

    def __init__(
        self,
        *,
        reduce_fn: Callable[[list[Any]], Any] | None = None,
        size: int | None = None,
        deterministic: bool = False,
        members: int | None = None,
        base: str = "LabeledFewShot",
        reducer: str | None = None,
        metric: Callable[..., Any] | None = None,
        **options: Any,
    ) -> None:
        own = {"seed", "max_lm_calls", "max_cost", "num_threads", "display_progress"}
        self.base_settings = {k: options.pop(k) for k in list(options) if k not in own}
        super().__init__(**options)
        if size is not None and size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if members is not None and (isinstance(members, bool) or members < 1):
            raise ValueError(f"members must be a whole number >= 1, got {members!r}")
        if reducer is not None:
            if reducer not in REDUCERS:
                raise ValueError(
                    f"unknown reducer {reducer!r}; the registered reducers are "
                    f"{', '.join(map(repr, REDUCERS))}"
                )
            if reduce_fn is not None:
                raise ValueError("give reduce_fn (a function) or reducer (a name), not both")
            reduce_fn = REDUCERS[reducer]
        self.reduce_fn = reduce_fn
        self.reducer = reducer
        self.size = size
        self.deterministic = deterministic
        self.members = members
        self.base = base
        self.metric = metric

    def compile(
        self,
        programs: Sequence[Module] | Module,
        *,
        trainset: Sequence[Any] | None = None,
        teacher: Module | None = None,
        valset: Sequence[Any] | None = None,
    ) -> Module:
        if isinstance(programs, Module):
            if self.members is None:
                raise DsxError(
                    "Ensemble combines several programs: ensemble.compile([program1, program2, "
                    '...]), or members of one: Ensemble(members = 3, base = "BootstrapFewShot")'
                )
            return self._compile_members(programs, trainset, teacher, valset)
        if not all(isinstance(p, Module) for p in programs):
            raise DsxError(
                "Ensemble combines several programs: ensemble.compile([program1, program2, ...])"
            )
        if not programs:
            raise DsxError("Ensemble.compile() got no programs")
        self.log = [{"event": "result", "members": len(programs), "size": self.size}]
        ensembled = EnsembledProgram(
            [p.deepcopy() for p in programs],
            reduce_fn=self.reduce_fn,
            size=self.size,
            seed=self.seed,
        )
        ensembled._compiled = True  # type: ignore[attr-defined]
        return ensembled

    def _compile_members(
        self,
        student: Module,
        trainset: Sequence[Any] | None,
        teacher: Module | None,
        valset: Sequence[Any] | None,
    ) -> Module:
        from dsx.teleprompt import OPTIMIZERS, get_optimizer

        cls = get_optimizer(self.base)
        if cls is None or cls is Ensemble:
            raise DsxError(
                f"Ensemble's base optimizer {self.base!r} is not one this dsx has (use one of "
                f"{', '.join(n for n in OPTIMIZERS if n != 'Ensemble')})"
            )
        if self.reducer is None:
            raise DsxError(
                "Ensemble(members = N) needs reducer = a registered reducer's name "
                f"({', '.join(map(repr, REDUCERS))}): a build stores the name, never a function"
            )
        assert self.members is not None
        members: list[Module] = []
        self.log = []
        for i in range(self.members):
            settings = dict(self.base_settings)
            settings.setdefault("seed", self.seed + i)
            if self.metric is not None and "metric" in _init_params(cls):
                settings.setdefault("metric", self.metric)
            for key in ("num_threads", "max_lm_calls", "max_cost"):
                if getattr(self, key) is not None:
                    settings.setdefault(key, getattr(self, key))
            settings.setdefault("display_progress", self.display_progress)
            try:
                optimizer = cls(**settings)
            except (TypeError, ValueError) as exc:
                raise DsxError(f"Ensemble's base optimizer {self.base}: {exc}") from None
            if self.on_progress is not None:
                optimizer.on_progress = self.on_progress
            self.say(f"Ensemble: member {i + 1}/{self.members} with {self.base}")
            member = optimizer.compile(student, trainset=trainset or [], valset=valset)
            if dump_selector_of(member) is not None:
                raise DsxError(
                    f"Ensemble's base optimizer {self.base} chooses demos per call; a member "
                    "must be a plain program (use LabeledFewShot, BootstrapFewShot, ...)"
                )
            self.log.extend(getattr(optimizer, "log", []))
            members.append(member)
        self.log.append({"event": "result", "members": len(members), "size": self.size})
        return wrap_ensemble(student, members, self.reducer, self.size, self.seed)


def _init_params(cls: type) -> set[str]:
    import inspect

    return set(inspect.signature(cls.__init__).parameters)  # type: ignore[misc]


def dump_selector_of(program: Module) -> Any:
    """A KNN selector on ``program``, if any (members cannot carry one)."""
    return program.__dict__.get("_dsx_knn")


# -- the ensemble as learned state (``ir.Learned.selector``, kind "ensemble") ------------------

#: The reducers a saved ensemble may name. State names one; it can never carry code.
REDUCERS: dict[str, Callable[[list[Any]], Any]] = {"majority": majority}

_ENSEMBLE_KEYS = frozenset({"kind", "reducer", "size", "seed", "members"})


class _EnsembleState:
    """What an ensembled program carries: its members and how to combine them."""

    def __init__(self, ensembled: EnsembledProgram, reducer: str, base: type[Module]) -> None:
        self.ensembled = ensembled
        self.reducer = reducer
        self.base = base

    def __deepcopy__(self, memo: dict[int, Any]) -> _EnsembleState:
        # a copy of the program gets copies of the members (LMs are shared, as in deepcopy)
        return _EnsembleState(copy.deepcopy(self.ensembled, memo), self.reducer, self.base)


class _EnsembleProgram(Module):
    """Mixed into the program's class: run the members and reduce their predictions.

    The program's own predictors hold the first member's state, so a reader that ignores
    the selector still gets one of the members."""

    _dsx_ensemble: _EnsembleState

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self._dsx_ensemble.ensembled(*args, **kwargs)

    async def aforward(self, *args: Any, **kwargs: Any) -> Any:
        return await self._dsx_ensemble.ensembled.acall(*args, **kwargs)

    def set_lm(self, lm: Any) -> None:
        """Use ``lm`` for every predictor of the program and of each member."""
        super().set_lm(lm)
        for member in self._dsx_ensemble.ensembled.programs:
            member.set_lm(lm)


_CLASSES: dict[type[Module], type[Module]] = {}


def _ensemble_class(base: type[Module]) -> type[Module]:
    cls = _CLASSES.get(base)
    if cls is None:
        cls = type(f"Ensemble{base.__name__}", (_EnsembleProgram, base), {"__module__": __name__})
        _CLASSES[base] = cls
    return cls


def _plain(program: Module) -> Module:
    """A copy of ``program`` as its own class (no ensemble wrapped around it)."""
    plain = copy.deepcopy(program)
    state = plain.__dict__.pop("_dsx_ensemble", None)
    if isinstance(state, _EnsembleState):
        plain.__class__ = state.base
    return plain


def wrap_ensemble(
    program: Module, members: Sequence[Module], reducer: str, size: int | None, seed: int
) -> Module:
    """A copy of ``program`` that runs ``members`` (copies of it) and reduces with ``reducer``."""
    wrapped = _plain(program)
    base = type(wrapped)
    plain = [_plain(m) for m in members]
    Module.load_state(wrapped, Module.dump_state(plain[0]), allow_endpoints=True)
    ensembled = EnsembledProgram(plain, reduce_fn=REDUCERS[reducer], size=size, seed=seed)
    wrapped.__class__ = _ensemble_class(base)
    wrapped._dsx_ensemble = _EnsembleState(ensembled, reducer, base)  # type: ignore[attr-defined]
    wrapped._compiled = True  # type: ignore[attr-defined]
    return wrapped


def dump_ensemble(program: Module) -> dict[str, Any] | None:
    """An ensembled program's selector as JSON data (``None`` for any other program)."""
    state = program.__dict__.get("_dsx_ensemble")
    if not isinstance(state, _EnsembleState):
        return None
    ensembled = state.ensembled
    return {
        "kind": "ensemble",
        "reducer": state.reducer,
        "size": ensembled.size,
        "seed": ensembled.seed,
        "members": [Module.dump_state(m) for m in ensembled.programs],
    }


def _bad(where: str, message: str) -> StateError:
    return StateError(f"The learned ensemble of `{where}`: {message}")


def check_ensemble(
    data: Any, name: str = "program", *, allow_endpoints: bool = False
) -> tuple[str, int | None, int, list[dict[str, Any]]]:
    """A saved ensemble, checked: ``(reducer, size, seed, member states)``.

    Every member's predictor state goes through the state file's trust check
    (:func:`dsx.runtime.state.check_predictor_state`); a reducer is a registered name."""
    from dsx.runtime.state import check_predictor_state

    if not isinstance(data, Mapping):
        raise _bad(name, f"expected an object, got {type(data).__name__}")
    unknown = sorted(set(data) - _ENSEMBLE_KEYS)
    if unknown:
        raise _bad(name, f"{unknown[0]!r} is not part of an ensemble selector")
    reducer = data.get("reducer")
    if reducer not in REDUCERS:
        raise _bad(
            name,
            f"unknown reducer {reducer!r}; this dsx has {', '.join(map(repr, REDUCERS))}. "
            "A state file names a reducer, it cannot carry one: rebuild with this dsx.",
        )
    size = data.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 1):
        raise _bad(name, f"size must be null or a whole number >= 1, got {size!r}")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise _bad(name, f"seed must be a whole number, got {seed!r}")
    members = data.get("members")
    if not isinstance(members, list) or not members:
        raise _bad(name, "members must be a non-empty list of predictor states")
    checked: list[dict[str, Any]] = []
    for i, member in enumerate(members):
        if not isinstance(member, Mapping):
            raise _bad(name, f"members[{i}] must map predictor paths to their state")
        try:
            for path, state in member.items():
                check_predictor_state(
                    state, name=f"members[{i}].{path}", allow_endpoints=allow_endpoints
                )
        except StateError as exc:
            raise _bad(name, str(exc)) from None
        checked.append(dict(member))
    return str(reducer), size, seed, checked


def prepare_ensemble(
    program: Module, data: Any, name: str = "program", *, allow_endpoints: bool = False
) -> Callable[[], None]:
    """Check a saved ensemble and return the step that wraps ``program`` with it.

    Each member is ``program`` with the member's predictor state, built and checked here
    (a :class:`~dsx.errors.StateError` leaves ``program`` as it was); the step changes it.
    """
    reducer, size, seed, states = check_ensemble(data, name, allow_endpoints=allow_endpoints)
    members = []
    for i, state in enumerate(states):
        member = _plain(program)
        try:
            Module.load_state(member, state, allow_endpoints=allow_endpoints)
        except StateError as exc:
            raise _bad(name, f"members[{i}]: {exc}") from None
        members.append(member)

    def apply() -> None:
        base = type(program)
        if isinstance(program, _EnsembleProgram):
            base = program._dsx_ensemble.base
        ensembled = EnsembledProgram(members, reduce_fn=REDUCERS[reducer], size=size, seed=seed)
        program.__class__ = _ensemble_class(base)
        program._dsx_ensemble = _EnsembleState(ensembled, reducer, base)  # type: ignore[attr-defined]

    return apply
