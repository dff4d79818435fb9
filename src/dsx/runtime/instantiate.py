"""Live runtime objects from the IR: ``instantiate(unit)``.

Records become pydantic models, enums ``Literal`` types, signatures ``dsx.Signature``
classes, modules ``dsx.Module`` subclasses whose ``forward``/``aforward`` run the IR body,
and programs instances with their learned state applied.
"""

from __future__ import annotations

import csv
import json
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydantic

from dsx import ir
from dsx.errors import DsxError
from dsx.runtime import _interp
from dsx.runtime.example import Example
from dsx.runtime.generated import import_python
from dsx.runtime.module import Module
from dsx.runtime.signature import Field, Signature, signature_from_fields
from dsx.runtime.types import History, Image

__all__ = ["Namespace", "instantiate", "load_data"]


class Namespace:
    """Everything a unit declares, as runtime objects.

    Attributes:
        types: record and enum names to Python types.
        signatures: signature names to signature classes.
        modules: module names to ``dsx.Module`` subclasses.
        python: ``use python`` aliases to imported modules.
        unit: the IR it came from.
    """

    def __init__(self, unit: ir.Unit, base_dir: Path) -> None:
        self.unit = unit
        self.base_dir = base_dir
        self.types: dict[str, Any] = {}
        self.signatures: dict[str, type[Signature]] = {}
        self.modules: dict[str, type[Module]] = {}
        self.python: dict[str, Any] = {}
        from dsx.runtime.resources import Resources

        #: ``lm`` and ``retriever`` declarations, each made on first use.
        self.resources = Resources(unit.lms, unit.retrievers, base_dir)

    # -- programs ---------------------------------------------------------------------------
    @property
    def program_names(self) -> list[str]:
        return [p.name for p in self.unit.programs]

    def program(
        self, name: str | None = None, *, learned: bool = True, allow_endpoints: bool = False
    ) -> Module:
        """A fresh instance of program ``name`` (the only/first one when omitted).

        ``learned``: apply the unit's learned state; ``allow_endpoints``: trust its LM
        endpoints and keys (see :func:`apply_learned`).
        """
        programs = {p.name: p for p in self.unit.programs}
        if not programs:
            raise DsxError(
                f"{self.unit.source} declares no `program`; add e.g. `program main = MyModule()`"
            )
        if name is None:
            name = self.unit.programs[0].name
        if name not in programs:
            raise DsxError(
                f"no program `{name}` in {self.unit.source}; programs: {', '.join(programs)}"
            )
        instance = self._build_sub(programs[name].root, self._env(), {})
        state = self.unit.learned.get(name)
        if learned and state is not None:
            apply_learned(instance, state, name, allow_endpoints=allow_endpoints)
        return instance

    def metric(self, name: str) -> Any:
        """The metric callable ``(example, prediction, trace=None)`` declared as ``name``."""
        from dsx.runtime.metrics import BUILTIN_METRICS

        m = next((m for m in self.unit.metrics if m.name == name), None)
        if m is None:
            raise DsxError(f"no metric `{name}`")
        if m.builtin:
            return BUILTIN_METRICS[m.builtin](**dict(m.kwargs))
        module, _, attr = (m.python or "").partition(":")
        return getattr(self._import(module), attr)

    def data(self, name: str) -> list[Example]:
        ds = next((d for d in self.unit.data if d.name == name), None)
        if ds is None:
            raise DsxError(f"no data `{name}`")
        return load_data(ds)

    # -- building ---------------------------------------------------------------------------
    def _import(self, module: str) -> Any:
        # The built module's rule (docs/build.md): the module's top-level package is looked
        # for next to the .dsx file, then installed; sys.path is left alone, so a helper's
        # own imports follow Python's rules in `dsx run` and in the built module alike.
        return import_python(module, str(Path(self.base_dir) / "_"), ".")

    def pytype(self, t: ir.TypeRef) -> Any:
        k = t.kind
        simple = {
            "str": str,
            "int": int,
            "float": float,
            "bool": bool,
            "any": Any,
            "image": Image,
            "history": History,
        }
        if k in simple:
            return simple[k]
        args = tuple(self.pytype(a) for a in t.args)
        if k == "list":
            return list[args[0]] if args else list  # type: ignore[valid-type]
        if k == "dict":
            return dict[args[0], args[1]] if len(args) == 2 else dict  # type: ignore[valid-type]
        if k == "tuple":
            return tuple[args] if args else tuple  # type: ignore[valid-type]
        if k == "optional":
            return typing.Optional[args[0]]  # noqa: UP045
        if k == "union":
            return typing.Union[args]  # noqa: UP007
        if k == "literal":
            return typing.Literal[t.values]
        if k in ("record", "enum"):
            return self.types[t.name or ""]
        raise DsxError(f"unknown IR type kind {k!r}")

    def _build_types(self) -> None:
        for enum in self.unit.enums:
            self.types[enum.name] = typing.Literal[tuple(m.name for m in enum.members)]
        pending = list(self.unit.records)
        # Records may refer to each other; build in dependency order (a few passes).
        for _ in range(len(pending) + 1):
            later = []
            for rec in pending:
                try:
                    fields = {
                        f.name: (
                            self.pytype(f.type),
                            pydantic.Field(
                                default=f.default
                                if f.has_default
                                else None
                                if f.type.kind == "optional"
                                else ...,
                                description=f.desc or None,
                            ),
                        )
                        for f in rec.fields
                    }
                except KeyError:
                    later.append(rec)
                    continue
                model = pydantic.create_model(rec.name, __doc__=rec.doc or None, **fields)  # type: ignore[call-overload]
                self.types[rec.name] = model
            if not later:
                break
            pending = later

    def _build_signature(self, sig: ir.Signature) -> type[Signature]:
        fields = []
        for f in sig.fields:
            fields.append(
                Field(
                    f.name,
                    "input" if f.direction == "in" else "output",
                    self.pytype(f.type),
                    desc=f.desc or None,
                    **({"default": f.default} if f.has_default else {}),
                )
            )
        return signature_from_fields(sig.name, fields, sig.instructions)

    def _build_sub(self, sub: ir.Submodule, env: dict[str, Any], siblings: dict[str, Any]) -> Any:
        kwargs = {}
        for key, value in sub.kwargs:
            if sub.kind in ("Refine", "BestOfN") and key == "module":
                kwargs[key] = siblings[value.name]  # type: ignore[union-attr]
                continue
            kwargs[key] = _interp.run_sync(_interp.eval_expr(value, env))
        if sub.kind == "module":
            return self.modules[sub.module or ""](**kwargs)
        import dsx

        cls = getattr(dsx, sub.kind, None)
        if cls is None:
            raise DsxError(
                f"`{sub.name} = {sub.kind}(...)`: {sub.kind} is not available in this version of dsx"
            )
        if sub.signature is not None:
            return cls(self.signatures[sub.signature], **kwargs)
        return cls(**kwargs)

    def _build_module(self, mod: ir.Module) -> type[Module]:
        ns = self

        def __init__(self: Module, **params: Any) -> None:
            unknown = set(params) - {p.name for p in mod.params}
            if unknown:
                raise TypeError(f"module {mod.name} has no parameter {sorted(unknown)[0]!r}")
            env = ns._env()
            for p in mod.params:
                if p.name in params:
                    env[p.name] = params[p.name]
                elif p.default is not None:
                    env[p.name] = _interp.run_sync(_interp.eval_expr(p.default, env))
                else:
                    raise TypeError(f"module {mod.name} needs the parameter {p.name!r}")
            object.__setattr__(self, "_dsx_params", {p.name: env[p.name] for p in mod.params})
            built: dict[str, Any] = {}
            for sub in mod.submodules:
                built[sub.name] = ns._build_sub(sub, env, built)
                setattr(self, sub.name, built[sub.name])

        def _env_for(self: Module, args: tuple[Any, ...], inputs: dict[str, Any]) -> dict[str, Any]:
            fwd = mod.forward
            if fwd is None:
                raise DsxError(f"module {mod.name} has no forward body")
            env = ns._env()
            env.update(self._dsx_params)  # type: ignore[attr-defined]
            for sub in mod.submodules:
                env[sub.name] = getattr(self, sub.name)
            names = [p.name for p in fwd.params]
            if len(args) > len(names):
                raise TypeError(
                    f"{mod.name}.forward takes {len(names)} inputs, got {len(args)} positional"
                )
            given = dict(zip(names, args, strict=False))
            for key, value in inputs.items():
                if key not in names:
                    raise TypeError(f"{mod.name} has no input {key!r}; its inputs are {names}")
                given[key] = value
            for p in fwd.params:
                if p.name in given:
                    env[p.name] = given[p.name]
                elif p.default is not None:
                    env[p.name] = _interp.run_sync(_interp.eval_expr(p.default, env))
                else:
                    raise TypeError(f"{mod.name} is missing the input {p.name!r}")
            return env

        def forward(self: Module, *args: Any, **inputs: Any) -> Any:
            env = _env_for(self, args, inputs)
            return _interp.run_sync(_interp.forward_body(mod.forward, env))  # type: ignore[arg-type]

        async def aforward(self: Module, *args: Any, **inputs: Any) -> Any:
            env = _env_for(self, args, inputs)
            return await _interp.run_async(_interp.forward_body(mod.forward, env))  # type: ignore[arg-type]

        cls = type(
            mod.name,
            (Module,),
            {
                "__init__": __init__,
                "forward": forward,
                "aforward": aforward,
                "__doc__": mod.doc or None,
                "__module__": "dsx.programs",
            },
        )
        return cls

    def _env(self) -> dict[str, Any]:
        env = dict(_interp.BUILTINS)
        env.update(self.python)
        env.update(self.resources.factories())  # `lm = fast` is lowered to `fast()`
        # Record types, so that a forward body can build one: `Answer(text = t)`.
        env.update((r.name, self.types[r.name]) for r in self.unit.records if r.name in self.types)
        return env


def instantiate(unit: ir.Unit, *, base_dir: str | Path | None = None) -> Namespace:
    """Build the runtime objects of ``unit``; ``base_dir`` is where ``use python`` modules live."""
    base = Path(base_dir) if base_dir is not None else Path(unit.source).parent
    ns = Namespace(unit, base)
    for imp in unit.python:
        ns.python[imp.alias] = ns._import(imp.module)
    ns._build_types()
    for sig in unit.signatures:
        ns.signatures[sig.name] = ns._build_signature(sig)
    for mod in unit.modules:
        ns.modules[mod.name] = ns._build_module(mod)
    return ns


def apply_learned(
    program: Module, state: ir.Learned, name: str = "program", *, allow_endpoints: bool = False
) -> None:
    """Apply optimized instructions, demos and LM settings to a program instance.

    All predictors are checked before any changes (``dsx.runtime.state``'s trust boundary:
    an LM endpoint, key or unknown setting is a :class:`~dsx.errors.StateError` unless
    ``allow_endpoints``); a failure leaves the program as it was.
    """
    predictors = dict(program.named_predictors())
    steps = []
    for path, learned in state.predictors.items():
        predictor = predictors.get(path)
        if predictor is None:
            raise DsxError(
                f"The learned state of `{name}` has a predictor `{path}` the program does not have "
                f"(it has {sorted(predictors)}). Rebuild to re-optimize."
            )
        saved: dict[str, Any] = {"demos": list(learned.demos), "lm": learned.lm}
        if learned.instructions is not None:
            saved["signature"] = {"instructions": learned.instructions}
        steps.append(predictor._prepare_state(saved, name=path, allow_endpoints=allow_endpoints))
    if state.selector is not None:  # per-call demos (KNNFewShot): wraps the program last
        from dsx.teleprompt.knn import prepare_selector

        steps.append(
            prepare_selector(program, state.selector, name, allow_endpoints=allow_endpoints)
        )
    for apply in steps:
        apply()


def load_data(ds: ir.DataSet) -> list[Example]:
    """Read a ``data`` declaration's file into examples with their inputs marked."""
    from dsx._textfile import TextFileError, read_text

    path = Path(ds.base_dir) / ds.path
    try:
        text = read_text(path, what="data file")
    except TextFileError as exc:
        raise DsxError(f"data `{ds.name}`: {exc}") from None
    rows: list[dict[str, Any]]
    try:
        if ds.format == "jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        elif ds.format == "json":
            loaded = json.loads(text)
            rows = loaded if isinstance(loaded, list) else loaded.get("examples", [])
        else:
            rows = _csv_rows(ds.name, path, text)
    except (ValueError, AttributeError, RecursionError) as exc:  # Recursion: nested too deep
        raise DsxError(f"data `{ds.name}`: {path} is not valid {ds.format}: {exc}") from None
    if not rows:
        raise DsxError(
            f"data `{ds.name}`: {path} holds no examples; add some (one JSON object per line "
            "for jsonl, a header and rows for csv)"
        )
    examples = []
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise DsxError(f"data `{ds.name}`: record {i} of {path} is not an object")
        missing = [k for k in ds.inputs if k not in row]
        if missing:
            raise DsxError(f"data `{ds.name}`: record {i} of {path} lacks the input(s) {missing}")
        examples.append(Example(row).with_inputs(*ds.inputs))
    return examples


def _csv_rows(name: str, path: Path, text: str) -> list[dict[str, Any]]:
    """CSV rows as dicts; a row with more or fewer cells than the header is an error."""
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None:
        return []
    rows = []
    for cells in reader:
        if not cells:
            continue
        if len(cells) != len(header):
            raise DsxError(
                f"data `{name}`: {path} line {reader.line_num} has {len(cells)} cell(s) but the "
                f"header has {len(header)} ({', '.join(header)}); quote cells that contain commas"
            )
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def extract_learned(
    program: Module,
    *,
    optimizer: str = "",
    score: float | None = None,
    trajectory: Sequence[float] = (),
) -> ir.Learned:
    """The learned state of a program instance as IR (what optimizers hand to ``dsx build``)."""
    from dsx.runtime.adapters._values import jsonable

    predictors = {}
    for path, predictor in program.named_predictors():
        original = predictor._original_signature
        instructions = predictor.signature.instructions
        demos = tuple(
            {k: jsonable(v) for k, v in (d.items() if isinstance(d, Example) else dict(d).items())}
            for d in predictor.demos
        )
        predictors[path] = ir.build(
            ir.LearnedPredictor,
            instructions=instructions if instructions != original.instructions else None,
            demos=demos,
            # An LM the program declares (`lm fast = ...`) is the program's, not learned.
            lm=predictor.lm.dump_state()
            if predictor.lm is not None and not hasattr(predictor.lm, "_dsx_declared")
            else None,
        )
    from dsx.teleprompt.knn import dump_selector

    return ir.build(
        ir.Learned,
        optimizer=optimizer,
        score=score,
        predictors=predictors,
        trajectory=tuple(trajectory),
        selector=dump_selector(program),
    )


def examples_from_tests(ns: Namespace, program: str) -> list[Example]:
    """The ``test`` blocks of ``program`` as examples (given = inputs, expect = labels)."""
    examples = []
    for test in ns.unit.tests:
        if test.program != program:
            continue
        env = ns._env()
        values = {k: _interp.run_sync(_interp.eval_expr(v, env)) for k, v in test.given}
        labels = {k: _interp.run_sync(_interp.eval_expr(v, env)) for k, v in test.expect}
        examples.append(Example({**values, **labels}).with_inputs(*values))
    return examples
