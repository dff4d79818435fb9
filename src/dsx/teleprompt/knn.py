"""``KNNFewShot``: demos chosen per input — the trainset examples most similar to it.

At compile time the trainset's inputs are embedded once (``dsx.Embedder``: a provider's
embeddings through LiteLLM, a local model, or any function). Each call of the compiled
program embeds its inputs, takes the ``k`` nearest examples by cosine similarity (ties go to
the earlier example) and runs the program with them as demos. With ``bootstrap=True`` the
teacher first runs over the whole trainset once, and an example that passed the metric
contributes its bootstrapped trace instead of its raw labels (DSPy re-bootstraps on every
call; this pays once).
"""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from dsx._extras import require
from dsx.errors import DsxError, StateError
from dsx.runtime.embedder import Embedder
from dsx.runtime.example import Example
from dsx.runtime.module import Module
from dsx.teleprompt.base import Teleprompter, check_examples, fresh_copy

__all__ = ["KNN", "KNNFewShot", "dump_selector", "prepare_selector"]


def _text_of(values: Mapping[str, Any] | Example, keys: Sequence[str]) -> str:
    return " | ".join(f"{k}: {values[k]}" for k in keys if k in values)


def as_embedder(vectorizer: Any) -> Embedder:
    if isinstance(vectorizer, Embedder):
        return vectorizer
    if isinstance(vectorizer, str) or callable(vectorizer):
        return Embedder(vectorizer)
    raise DsxError(
        "KNN needs a vectorizer: a dsx.Embedder, a model name (e.g. "
        "'openai/text-embedding-3-small' or 'local:all-MiniLM-L6-v2') or a function from "
        f"texts to vectors; got {vectorizer!r}"
    )


class KNN:
    """The ``k`` trainset examples nearest to some inputs, by embedding similarity.

    Args:
        k: how many neighbours.
        trainset: examples with their inputs marked.
        vectorizer: a :class:`~dsx.Embedder` (or what :class:`Embedder` accepts).
    """

    def __init__(self, k: int, trainset: Sequence[Any], vectorizer: Any) -> None:
        np = require("optimize", "numpy", feature="KNNFewShot")

        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self.trainset = check_examples(trainset)
        self.embedder = as_embedder(vectorizer)
        keys: dict[str, None] = {}
        for ex in self.trainset:
            keys.update(dict.fromkeys(sorted(ex.input_keys or ())))
        self.input_keys = list(keys)
        texts = [_text_of(ex, self.input_keys) for ex in self.trainset]
        matrix = np.asarray(self.embedder(texts), dtype=np.float32) if texts else np.zeros((0, 1))
        self._matrix = _normalized(matrix)

    @classmethod
    def _restore(
        cls, k: int, trainset: list[Example], embedder: Embedder, keys: list[str], matrix: Any
    ) -> KNN:
        """A KNN from saved parts, without embedding the trainset again."""
        knn = cls.__new__(cls)
        knn.k, knn.trainset, knn.embedder, knn.input_keys = k, trainset, embedder, keys
        knn._matrix = _normalized(matrix)
        return knn

    def _top(self, vector: Any) -> list[int]:
        np = require("optimize", "numpy", feature="KNNFewShot")

        if not len(self._matrix):
            return []
        scores = self._matrix @ _normalized(np.asarray(vector, dtype=np.float32)[None, :])[0]
        order = np.argsort(-scores, kind="stable")  # ties: the earlier example first
        return [int(i) for i in order[: self.k]]

    def nearest_indices(self, inputs: Mapping[str, Any]) -> list[int]:
        return self._top(self.embedder(_text_of(inputs, self.input_keys)))

    async def anearest_indices(self, inputs: Mapping[str, Any]) -> list[int]:
        return self._top(await self.embedder.acall(_text_of(inputs, self.input_keys)))

    def __call__(self, **inputs: Any) -> list[Example]:
        """The nearest examples, most similar first."""
        return [self.trainset[i] for i in self.nearest_indices(inputs)]


def _normalized(matrix: Any) -> Any:
    np = require("optimize", "numpy", feature="KNNFewShot")

    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


class _KNNState:
    """What a KNN-compiled program carries: the index and each example's demos per predictor."""

    def __init__(self, knn: KNN, demos: list[dict[str, list[Example]]], base: type[Module]) -> None:
        self.knn = knn
        self.demos = demos
        self.base = base

    def __deepcopy__(self, memo: dict[int, Any]) -> _KNNState:
        return self  # immutable after compile; copies of the program share it

    def program_for(self, program: Module, neighbours: list[int]) -> Module:
        run = copy.deepcopy(program)
        run.__class__ = self.base
        del run.__dict__["_dsx_knn"]
        for name, predictor in run.named_predictors():
            predictor.demos = [d for i in neighbours for d in self.demos[i].get(name, [])]
        return run


class _KNNProgram(Module):
    """Mixed into the student's class: pick demos for each call, then run the student."""

    _dsx_knn: _KNNState

    def forward(self, **kwargs: Any) -> Any:
        state = self._dsx_knn
        return state.program_for(self, state.knn.nearest_indices(kwargs))(**kwargs)

    async def aforward(self, **kwargs: Any) -> Any:
        state = self._dsx_knn
        neighbours = await state.knn.anearest_indices(kwargs)
        return await state.program_for(self, neighbours).acall(**kwargs)


_CLASSES: dict[type[Module], type[Module]] = {}
_BOOTSTRAP_KEYS = frozenset(
    {"max_rounds", "metric_threshold", "teacher_settings", "max_errors", "max_labeled_demos"}
)


def _knn_class(base: type[Module]) -> type[Module]:
    cls = _CLASSES.get(base)
    if cls is None:
        cls = type(f"KNN{base.__name__}", (_KNNProgram, base), {"__module__": __name__})
        _CLASSES[base] = cls
    return cls


class KNNFewShot(Teleprompter):
    """Per-input demos: the ``k`` trainset examples nearest to each call's inputs.

    Args:
        k: demos per call.
        trainset: the examples to draw from (default: ``compile``'s ``trainset``).
        vectorizer: a :class:`~dsx.Embedder`, a model name for one, or a function from
            texts to vectors.
        metric: the bootstrapping metric (with ``bootstrap``).
        bootstrap: bootstrap each trainset example's demo from the teacher's run once at
            compile time (default: ``True`` when a metric is given here).
        **options: for bootstrapping, ``max_rounds``, ``metric_threshold``,
            ``teacher_settings``, ``max_errors``, ``max_labeled_demos``; and ``seed``,
            ``max_lm_calls``, ``max_cost``, ``num_threads``, ``display_progress``.

    The compiled program chooses its demos at run time; ``dsx build`` bakes the index into
    the learned state (:func:`dump_selector`) when the vectorizer is a named model.
    """

    exports_to_ir = True
    #: Settings passed on to the bootstrapping (the optimizer registry reads them there).
    forwarded_settings = (("dsx.teleprompt.bootstrap:BootstrapFewShot", _BOOTSTRAP_KEYS),)

    def __init__(
        self,
        k: int = 3,
        trainset: Sequence[Any] | None = None,
        vectorizer: Any = None,
        *,
        metric: Callable[..., Any] | None = None,
        bootstrap: bool | None = None,
        **options: Any,
    ) -> None:
        self.bootstrap_args = {k: options.pop(k) for k in list(options) if k in _BOOTSTRAP_KEYS}
        super().__init__(**options)
        self.k = k
        self.trainset = list(trainset) if trainset is not None else None
        self.vectorizer = vectorizer
        self.metric = metric
        self.bootstrap = bootstrap if bootstrap is not None else metric is not None

    def compile(
        self,
        student: Module,
        *,
        trainset: Sequence[Any] | None = None,
        teacher: Module | None = None,
        valset: Sequence[Any] | None = None,
    ) -> Module:
        source = self.trainset if self.trainset is not None else trainset
        if source is None:
            raise DsxError("KNNFewShot needs a trainset: KNNFewShot(k, trainset, vectorizer)")
        examples = check_examples(source)
        if self.vectorizer is None:
            raise DsxError(
                "KNNFewShot needs a vectorizer, e.g. KNNFewShot(k=3, vectorizer="
                "dsx.Embedder('openai/text-embedding-3-small')) or dsx.Embedder.local()"
            )
        program = fresh_copy(student)
        with self.session(program, teacher):
            knn = KNN(self.k, examples, self.vectorizer)
            demos: list[dict[str, list[Example]]] = [
                {name: [ex] for name, _ in program.named_predictors()} for ex in examples
            ]
            if self.bootstrap:
                demos = self._bootstrapped(student, teacher, examples, demos)
            self.log.append(
                {
                    "event": "result",
                    "examples": len(examples),
                    "bootstrapped": sum(1 for d in demos if _augmented(d)),
                }
            )
            self.say(
                f"KNNFewShot: {len(examples)} examples indexed ({knn.embedder.model}), k={self.k}"
            )
        base = type(program)
        program.__class__ = _knn_class(base)
        program._dsx_knn = _KNNState(knn, demos, base)  # type: ignore[attr-defined]
        program._compiled = True  # type: ignore[attr-defined]
        return program

    def _bootstrapped(
        self,
        student: Module,
        teacher: Module | None,
        examples: list[Example],
        demos: list[dict[str, list[Example]]],
    ) -> list[dict[str, list[Example]]]:
        from dsx.teleprompt.bootstrap import BootstrapFewShot

        args = {**self.bootstrap_args, "max_bootstrapped_demos": len(examples)}
        inner = BootstrapFewShot(
            metric=self.metric, seed=self.seed, num_threads=self.num_threads, **args
        )
        found = inner.bootstrap(inner._teacher(student, teacher, examples), examples)
        self.log.extend(e for e in inner.log if e["event"] == "run")
        return [{**labeled, **found.get(i, {})} for i, labeled in enumerate(demos)]


def _augmented(demos: dict[str, list[Example]]) -> bool:
    return any(d.get("dsx_augmented") for ds in demos.values() for d in ds)


# -- the selector as learned state (``ir.Learned.selector``) ---------------------------------

#: The keys of a KNN selector and of its embedder: the embedder is named by its model only,
#: so a state file can never choose where texts are sent (endpoints come from code/env).
_SELECTOR_KEYS = frozenset({"kind", "k", "embedder", "input_keys", "examples", "demos", "vectors"})
_ENDPOINT_KEYS = frozenset({"api_base", "base_url", "api_key", "headers", "extra_headers"})


def dump_selector(program: Module) -> dict[str, Any] | None:
    """A KNN-compiled or ensembled program's selector as JSON data (``None`` for any other
    program; an ensemble's is :func:`dsx.teleprompt.ensemble.dump_ensemble`'s).

    Raises:
        DsxError: when the vectorizer is a Python function (it has no name to rebuild it by).
    """
    from dsx.teleprompt.ensemble import dump_ensemble

    ensemble = dump_ensemble(program)
    if ensemble is not None:
        return ensemble
    state = program.__dict__.get("_dsx_knn")
    if not isinstance(state, _KNNState):
        return None
    np = require("optimize", "numpy", feature="KNNFewShot")

    from dsx.runtime.adapters._values import jsonable

    knn = state.knn
    if knn.embedder.kind == "function":
        raise DsxError(
            f"KNNFewShot's vectorizer is the Python function {knn.embedder.model!r}, which a "
            "build cannot name: use a named embedding model, e.g. vectorizer = "
            '"local:all-MiniLM-L6-v2" or "openai/text-embedding-3-small"'
        )
    matrix = np.ascontiguousarray(knn._matrix, dtype="<f4")

    def values(d: Mapping[str, Any] | Example) -> dict[str, Any]:
        return {k: jsonable(v) for k, v in d.items()}

    return {
        "kind": "knn",
        "k": knn.k,
        "embedder": {"model": knn.embedder.model},
        "input_keys": list(knn.input_keys),
        "examples": [
            {"values": values(ex), "inputs": sorted(ex.input_keys or ())} for ex in knn.trainset
        ],
        "demos": [{n: [values(d) for d in ds] for n, ds in row.items()} for row in state.demos],
        "vectors": {
            "dtype": "float32",
            "shape": list(matrix.shape),
            "data": base64.b64encode(matrix.tobytes()).decode("ascii"),
        },
    }


def _bad(where: str, message: str) -> StateError:
    return StateError(f"The learned selector of `{where}`: {message}")


def prepare_selector(
    program: Module, data: Any, name: str = "program", *, allow_endpoints: bool = False
) -> Callable[[], None]:
    """Check a saved selector and return the step that wraps ``program`` with it.

    Everything is checked first (a :class:`~dsx.errors.StateError` naming the problem); the
    returned step changes the program. The embedder is rebuilt from its model name only:
    an endpoint or key in the state is refused unless ``allow_endpoints``. A selector of
    kind ``"ensemble"`` is :func:`dsx.teleprompt.ensemble.prepare_ensemble`'s.
    """
    if isinstance(data, Mapping) and data.get("kind") == "ensemble":
        from dsx.teleprompt.ensemble import prepare_ensemble

        return prepare_ensemble(program, data, name, allow_endpoints=allow_endpoints)
    k, model, keys, trainset, per_example, matrix = _check_knn(
        data,
        name,
        predictors={n for n, _ in program.named_predictors()},
        allow_endpoints=allow_endpoints,
    )

    def apply() -> None:
        vectorizer = Embedder(model)
        if matrix is None:
            knn = KNN(k, trainset, vectorizer)
        else:
            knn = KNN._restore(k, trainset, vectorizer, list(keys), matrix)
        base = type(program)
        if isinstance(program, _KNNProgram):
            base = program._dsx_knn.base
        program.__class__ = _knn_class(base)
        program._dsx_knn = _KNNState(knn, per_example, base)  # type: ignore[attr-defined]

    return apply


def check_selector(
    data: Any,
    name: str = "program",
    *,
    predictors: set[str] | None = None,
    allow_endpoints: bool = False,
) -> Any:
    """A saved selector of either kind, checked (the build cache checks with it): a KNN
    selector's parts (:func:`_check_knn`) or an ensemble's
    (:func:`dsx.teleprompt.ensemble.check_ensemble`)."""
    if isinstance(data, Mapping) and data.get("kind") == "ensemble":
        from dsx.teleprompt.ensemble import check_ensemble

        return check_ensemble(data, name, allow_endpoints=allow_endpoints)
    return _check_knn(data, name, predictors=predictors, allow_endpoints=allow_endpoints)


def _check_knn(
    data: Any,
    name: str = "program",
    *,
    predictors: set[str] | None = None,
    allow_endpoints: bool = False,
) -> tuple[int, str, list[str], list[Example], list[dict[str, list[Example]]], Any]:
    """A saved KNN selector, checked (:func:`prepare_selector`): ``(k, model, input_keys,
    trainset, demos per example, vectors or None)``."""
    if not isinstance(data, Mapping):
        raise _bad(name, f"expected an object, got {type(data).__name__}")
    kind = data.get("kind")
    if kind != "knn":
        raise _bad(
            name,
            f"unknown selector kind {kind!r}; this dsx rebuilds 'knn' (KNNFewShot) and "
            "'ensemble' (Ensemble). Rebuild the program with this dsx.",
        )
    np = require("optimize", "numpy", feature="KNNFewShot")
    unknown = sorted(set(data) - _SELECTOR_KEYS)
    if unknown:
        raise _bad(name, f"{unknown[0]!r} is not part of a KNN selector")
    k = data.get("k")
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise _bad(name, f"k must be a whole number >= 1, got {k!r}")
    embedder = data.get("embedder")
    if not isinstance(embedder, Mapping) or not isinstance(embedder.get("model"), str):
        raise _bad(name, 'embedder must be {"model": "<embedding model name>"}')
    for key in embedder:
        if key == "model":
            continue
        if key in _ENDPOINT_KEYS and not allow_endpoints:
            raise _bad(
                name,
                f"the state sets embedder.{key}, which decides where texts and API keys are "
                "sent; state may name the embedding model only. Configure endpoints in code "
                "or the environment; if you trust this file, load it with allow_endpoints=True.",
            )
        if not allow_endpoints:
            raise _bad(name, f"embedder.{key} is not a setting state may carry (only model)")
    model = embedder["model"]
    if not model or "://" in model:
        raise _bad(name, f"embedder.model must be a model name, not an address: {model!r}")
    keys = data.get("input_keys")
    if not isinstance(keys, list) or not all(isinstance(x, str) for x in keys):
        raise _bad(name, "input_keys must be a list of field names")
    rows = data.get("examples")
    demos = data.get("demos")
    if not isinstance(rows, list) or not isinstance(demos, list) or len(rows) != len(demos):
        raise _bad(name, "examples and demos must be lists of the same length")
    trainset: list[Example] = []
    for i, row in enumerate(rows):
        if (
            not isinstance(row, Mapping)
            or not isinstance(row.get("values"), Mapping)
            or not isinstance(row.get("inputs"), list)
        ):
            raise _bad(name, f"examples[{i}] must be {{'values': {{...}}, 'inputs': [...]}}")
        trainset.append(Example(dict(row["values"])).with_inputs(*row["inputs"]))
    per_example: list[dict[str, list[Example]]] = []
    for i, row in enumerate(demos):
        if not isinstance(row, Mapping):
            raise _bad(name, f"demos[{i}] must map predictor paths to demo lists")
        extra = sorted(set(row) - predictors) if predictors is not None else []
        if extra:
            raise _bad(
                name,
                f"demos[{i}] has a predictor {extra[0]!r} the program does not have (it has "
                f"{sorted(predictors or ())}). Rebuild to re-optimize.",
            )
        for path, ds in row.items():
            if not isinstance(ds, list) or not all(isinstance(d, Mapping) for d in ds):
                raise _bad(name, f"demos[{i}].{path} must be a list of objects")
        per_example.append({p: [Example(dict(d)) for d in ds] for p, ds in row.items()})
    matrix = None
    vectors = data.get("vectors")
    if vectors is not None:
        try:
            shape = [int(x) for x in vectors["shape"]]
            raw = base64.b64decode(vectors["data"], validate=True)
            if vectors.get("dtype") != "float32" or len(shape) != 2 or shape[0] != len(rows):
                raise ValueError("shape or dtype")
            matrix = np.frombuffer(raw, dtype="<f4").reshape(shape).astype(np.float32)
        except (KeyError, TypeError, ValueError) as exc:
            raise _bad(
                name,
                "vectors must be {'dtype': 'float32', 'shape': [examples, dim], 'data': base64} "
                f"with one row per example ({exc})",
            ) from None

    return k, model, list(keys), trainset, per_example, matrix
