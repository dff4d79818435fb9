"""The *project* pass: ``program``, ``data``, ``metric``, then ``optimize`` and ``test``
blocks, and the warnings for declarations never used.

Reads the tables of the passes before it (:class:`~dsx.compiler._pass_declare.Names`,
:class:`~dsx.compiler._pass_types.TypeTables`,
:class:`~dsx.compiler._pass_signatures.SignatureTables`) and the checked modules; writes
:class:`ProjectTables` and reports into :class:`~dsx.compiler._records.Records`. What it
asks of the module checker — a program's root sub-module, a module's result, the
expressions of a test — goes through the narrow :class:`Bodies` interface.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from dsx import ir
from dsx.compiler import _env
from dsx.compiler._entries import _Entry
from dsx.compiler._pass_declare import TOP_KINDS, Names
from dsx.compiler._pass_signatures import SignatureTables
from dsx.compiler._pass_types import NOT_CONST as _NOT_CONST
from dsx.compiler._pass_types import TypeTables, mismatch
from dsx.compiler._pass_types import const_value as _const_value
from dsx.compiler._records import Records
from dsx.compiler.symbols import PredType
from dsx.diagnostics import DiagnosticCode, Edit, Fix, Span
from dsx.grammar import ast
from dsx.grammar.parser import ParsedFile
from dsx.runtime.metrics import prediction_fields

__all__ = ["MODULE_OUTPUTS", "Bodies", "ProjectPass", "ProjectTables"]

#: Outputs the runtime's modules add to a signature's: ChainOfThought's and ReAct's.
MODULE_OUTPUTS = ("reasoning", "next_thought", "next_tool_name", "next_tool_args")
_MODULE_OUTPUTS = MODULE_OUTPUTS
_TOP_KINDS = TOP_KINDS
_b = ir.build


@dataclass(slots=True)
class ProjectTables:
    """What the project pass records: programs (with their inputs and outputs), data sets,
    metrics, optimize blocks and tests (by ``id`` of their declaration, in file order)."""

    programs: dict[str, ir.Program] = field(default_factory=dict)
    program_io: dict[str, tuple[dict[str, Any], Any]] = field(default_factory=dict)
    data: dict[str, ir.DataSet] = field(default_factory=dict)
    metrics: dict[str, ir.Metric] = field(default_factory=dict)
    optimizes: list[ir.Optimize] = field(default_factory=list)
    tests: dict[int, ir.Test] = field(default_factory=dict)

    def copy(self) -> ProjectTables:
        return ProjectTables(
            copy.copy(self.programs),
            copy.copy(self.program_io),
            copy.copy(self.data),
            copy.copy(self.metrics),
            list(self.optimizes),
            copy.copy(self.tests),
        )


class Bodies(Protocol):
    """What the project pass asks of the module checker (:mod:`dsx.compiler._lower_modules`
    and :mod:`dsx.compiler._lower_exprs`)."""

    @property
    def modules(self) -> dict[str, Any]: ...
    def _base_scope(self) -> dict[str, Any]: ...
    def _submodule(
        self, name: str, value: Any, scope: dict[str, Any], *, owner: str
    ) -> tuple[ir.Submodule, Any]: ...
    def _module_forward(self, name: str) -> Any: ...
    def _expr(self, e: Any, scope: dict[str, Any]) -> tuple[Any, Any]: ...
    def _check_assignable(
        self, actual: Any, expected: ir.TypeRef | None, span: Span, what: str
    ) -> None: ...
    def _check(self, stmt: ast.Check, scope: dict[str, Any]) -> ir.Check: ...


class ProjectPass:
    """The pass over one unit's project declarations (see the module docstring)."""

    __slots__ = ("bodies", "names", "rec", "root", "sigs", "tables", "types")

    def __init__(
        self,
        rec: Records,
        names: Names,
        types: TypeTables,
        sigs: SignatureTables,
        tables: ProjectTables,
        bodies: Bodies,
        root: str,
    ) -> None:
        self.rec, self.names, self.types, self.sigs = rec, names, types, sigs
        self.tables, self.bodies, self.root = tables, bodies, root

    def program(self, decl: ast.ProgramDecl) -> None:
        name = decl.name.name
        scope = self.bodies._base_scope()
        lowered, sub = self.bodies._submodule(name, decl.value, scope, owner=name)
        if self.names.decls.get(name, (None, None))[1] is not decl:
            return
        self.tables.programs[name] = _b(
            ir.Program,
            name=name,
            root=lowered,
            doc=decl.doc or "",
            loc=self.rec.loc(decl.name.span),
        )
        inputs: dict[str, Any] = {}
        outputs: Any = None
        if sub.kind == "module" and sub.module in self.bodies.modules:
            info = self.bodies.modules[sub.module]
            if info.forward is not None:
                inputs = {p.name: p for p in info.forward.params}
            outputs = self.bodies._module_forward(sub.module)
            if isinstance(outputs, ir.TypeRef) and outputs.kind == "record":
                rec = self.types.records.get(outputs.name or "")  # a record result: its fields
                if rec is not None:
                    outputs = PredType(
                        name,
                        {f.name: f.type for f in rec.fields},
                        {f.name: f"{rec.name}.{f.name}" for f in rec.fields},
                    )
        elif sub.signature is not None:
            inputs = {f.name: f for f in sub.signature.inputs}
            kind = _env.KINDS[sub.kind]
            outputs = PredType(
                name,
                {
                    **{x: _b(ir.TypeRef, kind="str") for x in kind.extra_outputs},
                    **{f.name: f.type for f in sub.signature.outputs},
                },
                # `expect answer = ...` in a test names the signature's field: a reference.
                {f.name: f"{sub.signature.name}.{f.name}" for f in sub.signature.outputs},
            )
        self.tables.program_io[name] = (inputs, outputs)
        self.rec.describe(
            name, detail=f"program {name} = {sub.module or sub.kind}({', '.join(inputs)})"
        )

    def data(self, decl: ast.DataDecl) -> None:
        name = decl.name.name
        value = decl.value
        usage = (
            'write `data NAME = jsonl("file.jsonl", inputs = [question])` (or csv(...), json(...))'
        )
        if not (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.NameRef)
            and value.func.name.name in ("jsonl", "csv", "json")
        ):
            self.rec.error(
                DiagnosticCode.INVALID_DATA, f"`data {name}` must load a file: {usage}", value.span
            )
            return
        fmt = value.func.name.name
        positional = [a for a in value.args if a.name is None]
        if not positional or not isinstance(positional[0].value, ast.Str):
            self.rec.error(
                DiagnosticCode.INVALID_DATA,
                f"`{fmt}(...)` needs the file path as a string first: {usage}",
                value.span,
            )
            return
        path = positional[0].value.value
        inputs: list[str] = []
        inputs_arg = value.kwarg("inputs")
        for arg in value.args:
            if arg.name is not None and arg.name.name != "inputs":
                self.rec.error(
                    DiagnosticCode.INVALID_DATA,
                    f"`{fmt}(...)` accepts a path and `inputs = [...]`, not `{arg.name.name}`",
                    arg.name.span,
                )
        if inputs_arg is None or not isinstance(inputs_arg.value, ast.ListExpr):
            self.rec.error(
                DiagnosticCode.INVALID_DATA,
                f"`{fmt}(...)` needs `inputs = [...]` naming the input fields of each example",
                value.span,
            )
        else:
            for item in inputs_arg.value.items:
                if isinstance(item, ast.NameRef):
                    inputs.append(item.name.name)
                elif isinstance(item, ast.Str):
                    inputs.append(item.value)
                else:
                    self.rec.error(
                        DiagnosticCode.INVALID_DATA, "each input must be a field name", item.span
                    )
        base_dir = str(Path(decl.span.file).parent)
        try:
            exists = (Path(base_dir) / path).exists()
        except (OSError, ValueError):
            exists = False
        if not exists:
            self.rec.error(
                DiagnosticCode.INVALID_DATA,
                f"data file `{path}` does not exist (relative to {Path(decl.span.file).name})",
                positional[0].value.span,
                severity="warning",
            )
        self.tables.data[name] = _b(
            ir.DataSet,
            name=name,
            format=fmt,
            path=path,
            base_dir=base_dir,
            inputs=tuple(inputs),
            loc=self.rec.loc(decl.name.span),
        )

    def metric(self, decl: ast.MetricDecl) -> None:
        name = decl.name.name
        value = decl.value
        metric: ir.Metric | None = None
        if isinstance(value, ast.Attr) and isinstance(value.obj, ast.NameRef):
            alias = value.obj.name.name
            if alias in self.names.python:
                self.rec.ref(value.obj.name.span, alias)
                names = self.names.python_names.get(alias)
                if names is not None and value.name.name not in names:
                    self.rec.unknown(
                        DiagnosticCode.UNKNOWN_NAME,
                        f"name in Python module `{self.names.python[alias].module}`:",
                        value.name,
                        names,
                    )
                metric = _b(
                    ir.Metric,
                    name=name,
                    python=f"{self.names.python[alias].module}:{value.name.name}",
                    loc=self.rec.loc(decl.name.span),
                )
            else:
                self.rec.unknown(
                    DiagnosticCode.UNKNOWN_NAME,
                    "Python module alias",
                    value.obj.name,
                    self.names.python,
                    'declare it with `use python "module" as alias`',
                )
                return
        elif isinstance(value, ast.NameRef) and value.name.name in _env.BUILTIN_METRICS:
            metric = _b(
                ir.Metric, name=name, builtin=value.name.name, loc=self.rec.loc(decl.name.span)
            )
        elif (
            isinstance(value, ast.Call)
            and isinstance(value.func, ast.NameRef)
            and value.func.name.name in _env.BUILTIN_METRICS
        ):
            kwargs = []
            for arg in value.args:
                v = _const_value(arg.value)
                if arg.name is None or v is _NOT_CONST:
                    self.rec.error(
                        DiagnosticCode.WRONG_DECLARATION_KIND,
                        "built-in metric settings are `name = constant`",
                        arg.span,
                    )
                    continue
                kwargs.append((arg.name.name, v))
            metric = _b(
                ir.Metric,
                name=name,
                builtin=value.func.name.name,
                kwargs=tuple(kwargs),
                loc=self.rec.loc(decl.name.span),
            )
        elif isinstance(value, ast.NameRef):
            self.rec.unknown(
                DiagnosticCode.UNKNOWN_NAME,
                "metric",
                value.name,
                _env.BUILTIN_METRICS,
                "use a built-in metric (exact_match, f1, ...) or `alias.function` from `use python`",
            )
            return
        else:
            self.rec.error(
                DiagnosticCode.WRONG_DECLARATION_KIND,
                "a metric is a Python function (`alias.name`) or a built-in (exact_match, f1, passage_match, answer_in_context)",
                value.span,
            )
            return
        if self.names.decls.get(name, (None, None))[1] is decl:
            self.tables.metrics[name] = metric

    def _lookup(self, ident: ast.Ident, kind: str) -> bool:
        found_kind, _ = self.names.decls.get(ident.name, (None, None))
        if found_kind == kind:
            self.rec.ref(ident.span, ident.name)
            return True
        if found_kind is not None:
            self.rec.ref(ident.span, ident.name)
            self.rec.error(
                DiagnosticCode.WRONG_DECLARATION_KIND,
                f"`{ident.name}` is {_env.a(found_kind)}, not {_env.a(kind)}",
                ident.span,
            )
        else:
            self.rec.unknown(
                DiagnosticCode.UNKNOWN_NAME,
                kind,
                ident,
                [n for n, (k, _) in self.names.decls.items() if k == kind],
            )
        return False

    def optimize(self, decl: ast.OptimizeDecl) -> None:
        program = decl.target.name
        ok = self._lookup(decl.target, "program")
        optimizer, settings = "", []
        train = dev = metric = lm = None
        seed = None
        for item in decl.items:
            key = item.key.name
            if key not in _env.OPTIMIZE_KEYS:
                guess = _env.did_you_mean(key, _env.OPTIMIZE_KEYS)
                fix = (
                    Fix(f"replace with `{guess}`", (Edit(item.key.span, guess),)) if guess else None
                )
                self.rec.error(
                    DiagnosticCode.INVALID_OPTIMIZE,
                    f"unknown optimize setting `{key}`"
                    + (
                        f"; did you mean `{guess}`?"
                        if guess
                        else f" (settings: {', '.join(sorted(_env.OPTIMIZE_KEYS))})"
                    ),
                    item.key.span,
                    fix=fix,
                )
                continue
            v = item.value
            if key == "with":
                if isinstance(v, ast.NameRef):
                    v = ast.Call(v, (), v.span)
                if not (isinstance(v, ast.Call) and isinstance(v.func, ast.NameRef)):
                    self.rec.error(
                        DiagnosticCode.INVALID_OPTIMIZE,
                        "`with` takes an optimizer, e.g. `with BootstrapFewShot(max_bootstrapped_demos = 4)`",
                        v.span,
                    )
                    continue
                optimizer = v.func.name.name
                settings = self._optimizer_settings(v)
            elif key in ("train", "dev"):
                if (
                    isinstance(v, ast.NameRef)
                    and v.name.name == "tests"
                    and "tests" not in self.names.decls
                ):
                    value = "tests"
                elif isinstance(v, ast.NameRef) and self._lookup(v.name, "data"):
                    value = v.name.name
                else:
                    if not isinstance(v, ast.NameRef):
                        self.rec.error(
                            DiagnosticCode.INVALID_OPTIMIZE,
                            f"`{key}` takes a data name (or `tests`)",
                            v.span,
                        )
                    continue
                if key == "train":
                    train = value
                else:
                    dev = value
            elif key == "metric":
                if isinstance(v, ast.NameRef) and self._lookup(v.name, "metric"):
                    metric = v.name.name
                    if ok:
                        self._metric_fits(program, v.name)
                elif not isinstance(v, ast.NameRef):
                    self.rec.error(
                        DiagnosticCode.INVALID_OPTIMIZE, "`metric` takes a metric name", v.span
                    )
            elif key == "lm":
                if isinstance(v, ast.Str):
                    lm = v.value
                else:
                    self.rec.error(
                        DiagnosticCode.INVALID_OPTIMIZE,
                        '`lm` takes a model string, e.g. `lm "openai/gpt-4o-mini"`',
                        v.span,
                    )
            elif key == "seed":
                if (
                    isinstance(v, ast.Lit)
                    and isinstance(v.value, int)
                    and not isinstance(v.value, bool)
                ):
                    seed = v.value
                else:
                    self.rec.error(
                        DiagnosticCode.INVALID_OPTIMIZE, "`seed` takes an integer", v.span
                    )
        for key, val in (("with", optimizer), ("train", train), ("metric", metric)):
            if not val and not any(i.key.name == key for i in decl.items):
                self.rec.error(
                    DiagnosticCode.INVALID_OPTIMIZE,
                    f"optimize `{program}` needs `{key} ...`",
                    decl.target.span,
                )
        if ok and optimizer and metric:
            self.tables.optimizes.append(
                _b(
                    ir.Optimize,
                    program=program,
                    optimizer=optimizer,
                    settings=tuple(settings),
                    train=train,
                    dev=dev,
                    metric=metric,
                    lm=lm,
                    seed=seed,
                    loc=self.rec.loc(decl.target.span),
                )
            )

    def _metric_fits(self, program: str, ref: ast.Ident) -> None:
        """A built-in metric that reads a prediction field the program does not output
        would score 0 on every example: report it where the optimize block names it."""
        metric = self.tables.metrics.get(ref.name)
        outputs = self.tables.program_io.get(program, ({}, None))[1]
        if metric is None or metric.builtin is None or not isinstance(outputs, PredType):
            return
        given = dict(metric.kwargs)
        for setting, default in prediction_fields(metric.builtin).items():
            name = given.get(setting, default)
            if not isinstance(name, str) or name in outputs.fields:
                continue
            have = ", ".join(f"`{f}`" for f in outputs.fields) or "none"
            choices = [f for f in outputs.fields if f not in MODULE_OUTPUTS]
            fix = None
            if len(choices) == 1:
                fixed = f'{metric.builtin}({setting} = "{choices[0]}")'
                hint = f"; to score `{choices[0]}`, declare the metric as `{fixed}`"
                fix = self._metric_field_fix(ref.name, setting, choices[0], fixed)
            else:
                hint = f"; name the output to score with `{metric.builtin}({setting} = ...)`"
            self.rec.error(
                DiagnosticCode.INVALID_OPTIMIZE,
                f"metric `{ref.name}` ({metric.builtin}) reads the output `{name}`, which "
                f"program `{program}` does not have (its outputs: {have}), so every example "
                f"would score 0{hint}",
                ref.span,
                fix=fix,
            )

    def _metric_field_fix(self, name: str, setting: str, output: str, fixed: str) -> Fix | None:
        """Rewrite ``metric NAME = ...`` as ``fixed`` (only where the declaration sets
        nothing but ``setting``, so that no other setting is lost)."""
        found = self.names.decls.get(name)
        value = (
            found[1].value if found is not None and isinstance(found[1], ast.MetricDecl) else None
        )
        if isinstance(value, ast.Call) and any(
            a.name is None or a.name.name != setting for a in value.args
        ):
            return None
        if not isinstance(value, ast.NameRef | ast.Call):
            return None
        return Fix(f"score `{output}`: {fixed}", (Edit(value.span, fixed),))

    def _optimizer_settings(self, call: ast.Call) -> list[tuple[str, Any]]:
        """Check ``with Optimizer(name = constant, ...)`` against the optimizer registry."""
        assert isinstance(call.func, ast.NameRef)
        ident = call.func.name
        info = _env.optimizer_info(ident.name)
        available = ", ".join(sorted(_env.OPTIMIZERS))
        if info is None:
            self.rec.unknown(
                DiagnosticCode.INVALID_OPTIMIZE,
                "optimizer",
                ident,
                _env.OPTIMIZERS,
                f"optimizers: {available}",
            )
        elif not info.available:
            self.rec.error(
                DiagnosticCode.INVALID_OPTIMIZE,
                f"the optimizer `{ident.name}` ({info.doc}) is not available in this version "
                f"of dsx; available: {available}",
                ident.span,
            )
        settings: list[tuple[str, Any]] = []
        for arg in call.args:
            cv = _const_value(arg.value)
            if arg.name is None or cv is _NOT_CONST:
                self.rec.error(
                    DiagnosticCode.INVALID_OPTIMIZE,
                    "optimizer settings are `name = constant`",
                    arg.span,
                )
                continue
            key = arg.name.name
            if info is None or not info.available:
                settings.append((key, cv))
                continue
            setting = info.settings.get(key)
            settable = [n for n, s in info.settings.items() if s.settable and n != "metric"]
            if setting is None:
                self.rec.unknown(
                    DiagnosticCode.INVALID_OPTIMIZE,
                    f"{info.name} setting",
                    arg.name,
                    settable,
                    f"{info.name} takes: {', '.join(settable)}",
                )
            elif key == "metric":
                self.rec.error(
                    DiagnosticCode.INVALID_OPTIMIZE,
                    "the optimizer's `metric` comes from the block's `metric` line",
                    arg.name.span,
                )
            elif not setting.settable:
                self.rec.error(
                    DiagnosticCode.INVALID_OPTIMIZE,
                    f"`{key}` takes a Python object, which a .dsx file cannot give; set it "
                    "from Python",
                    arg.name.span,
                )
            elif (problem := setting.check(cv)) is not None:
                self.rec.error(DiagnosticCode.INVALID_OPTIMIZE, problem, arg.value.span)
            else:
                settings.append((key, cv))
        return settings

    def test(self, decl: ast.TestDecl) -> None:
        program = decl.program.name
        known = self._lookup(decl.program, "program")
        inputs, outputs = self.tables.program_io.get(program, ({}, None)) if known else ({}, None)
        scope = self.bodies._base_scope()
        scope["result"] = _Entry("result", outputs)
        given, expect, checks, replies = [], [], [], []
        root = (
            self.tables.programs[program].root
            if known and program in self.tables.programs
            else None
        )
        for item in decl.items:
            if isinstance(item, ast.GivenItem):
                if known and inputs and item.name.name not in inputs:
                    self.rec.unknown(
                        DiagnosticCode.INVALID_TEST,
                        f"input of program `{program}`:",
                        item.name,
                        inputs,
                    )
                elif root is not None and item.name.name in inputs:
                    # `given question = ...` names the program's input: a reference to it.
                    owner = f"{root.module}.forward" if root.kind == "module" else root.signature
                    if owner:
                        self.rec.ref(item.name.span, f"{owner}.{item.name.name}")
                value, vtype = self.bodies._expr(item.value, scope)
                if item.name.name in inputs:
                    self.bodies._check_assignable(
                        vtype,
                        getattr(inputs[item.name.name], "type", None),
                        item.value.span,
                        f"input `{item.name.name}` of program `{program}`",
                    )
                given.append((item.name.name, value))
            elif isinstance(item, ast.ExpectItem):
                if known and isinstance(outputs, PredType) and item.name.name not in outputs.fields:
                    self.rec.unknown(
                        DiagnosticCode.INVALID_TEST,
                        f"output of program `{program}`:",
                        item.name,
                        outputs.fields,
                    )
                elif isinstance(outputs, PredType) and item.name.name in outputs.keys:
                    self.rec.ref(item.name.span, outputs.keys[item.name.name])
                value, vtype = self.bodies._expr(item.value, scope)
                ftype = (
                    outputs.fields.get(item.name.name) if isinstance(outputs, PredType) else None
                )
                if item.path:
                    checks.append(self._nested_expect(item, ftype, value, vtype, program))
                    continue
                if isinstance(outputs, PredType) and item.name.name in outputs.fields:
                    self.bodies._check_assignable(
                        vtype,
                        outputs.fields[item.name.name],
                        item.value.span,
                        f"output `{item.name.name}` of program `{program}`",
                    )
                expect.append((item.name.name, value))
            elif isinstance(item, ast.ReplyItem):
                replies.append(self._reply(item, scope))
            elif isinstance(item, ast.Check):
                checks.append(self.bodies._check(item, scope))
        if known and inputs:
            given_names = {g for g, _ in given}
            missing = [n for n, p in inputs.items() if n not in given_names and not _has_default(p)]
            if missing:
                self.rec.error(
                    DiagnosticCode.INVALID_TEST,
                    f"test `{decl.name.name}` gives no value for {', '.join(f'`{m}`' for m in missing)} (add `given {missing[0]} = ...`)",
                    decl.name.span,
                )
        self.tables.tests[id(decl)] = _b(
            ir.Test,
            name=decl.name.name,
            program=program,
            given=tuple(given),
            expect=tuple(expect),
            checks=tuple(checks),
            replies=tuple(replies),
            loc=self.rec.loc(decl.name.span),
        )

    def _reply(self, item: ast.ReplyItem, scope: dict[str, Any]) -> Any:
        """``reply "text"`` (the completion verbatim) or ``reply { field = value }``: each
        field an output of some signature (or a field the runtime's modules add), its
        value of a type that output takes. Lowered to a string or a dict expression."""
        if item.text is not None:
            return self.bodies._expr(item.text, scope)[0]
        outputs: dict[str, list[tuple[str, ir.TypeRef]]] = {}
        # declared signatures and inline ones (`Predict("answer -> plausible: bool")`)
        for sig in [*self.sigs.signatures.values(), *self.sigs.inline.values()]:
            for f in sig.outputs:
                outputs.setdefault(f.name, []).append((sig.name, f.type))
        keys, values, seen = [], [], set()
        for part in item.fields:
            name = part.name.name
            value, vtype = self.bodies._expr(part.value, scope)
            if name in seen:
                self.rec.error(
                    DiagnosticCode.INVALID_REPLY, f"the reply gives `{name}` twice", part.name.span
                )
            seen.add(name)
            owners = outputs.get(name)
            if owners is None and name not in _MODULE_OUTPUTS:
                self.rec.unknown(
                    DiagnosticCode.INVALID_REPLY,
                    "output of any signature (a scripted reply gives output values):",
                    part.name,
                    [*outputs, *_MODULE_OUTPUTS],
                )
            elif owners is not None:
                self.rec.ref(part.name.span, f"{owners[0][0]}.{name}")
                problems = [
                    (t, p)
                    for _, t in owners
                    if vtype is not None
                    and not isinstance(vtype, PredType)
                    and (p := mismatch(vtype, t, self.types))
                ]
                if len(problems) == len(owners) and problems:
                    t, p = problems[0]
                    self.rec.error(
                        DiagnosticCode.INVALID_REPLY,
                        f"output `{name}` of `{owners[0][0]}` expects {t}, got {p}",
                        part.value.span,
                    )
            keys.append(_b(ir.Const, value=name))
            values.append(value)
        return _b(ir.Dict, keys=tuple(keys), values=tuple(values), loc=self.rec.loc(item.span))

    def _nested_expect(
        self, item: ast.ExpectItem, ftype: Any, value: Any, vtype: Any, program: str
    ) -> ir.Check:
        """``expect verdict.meta.source = "x"``: a field of a record output, checked through
        the record types and run as ``assert result.verdict.meta.source == "x"``."""
        path = item.name.name
        target: Any = _b(ir.Attr, obj=_b(ir.Name, name="result"), name=item.name.name)
        for ident in item.path:
            if isinstance(ftype, ir.TypeRef) and ftype.kind == "optional":
                ftype = ftype.args[0]
            rec = (
                self.types.records.get(ftype.name or "")
                if isinstance(ftype, ir.TypeRef) and ftype.kind == "record"
                else None
            )
            if rec is not None:
                fields = {f.name: f.type for f in rec.fields}
                if ident.name in fields:
                    self.rec.ref(ident.span, f"{rec.name}.{ident.name}")
                    ftype = fields[ident.name]
                else:
                    self.rec.unknown(
                        DiagnosticCode.INVALID_TEST, f"field of `{rec.name}`:", ident, fields
                    )
                    ftype = None
            elif ftype is not None and getattr(ftype, "kind", None) not in ("any", "dict"):
                self.rec.error(
                    DiagnosticCode.INVALID_TEST,
                    f"`{path}` of program `{program}` is {ftype}, which has no fields",
                    ident.span,
                )
                ftype = None
            else:
                ftype = None
            path += "." + ident.name
            target = _b(ir.Attr, obj=target, name=ident.name)
        if isinstance(ftype, ir.TypeRef):
            self.bodies._check_assignable(
                vtype, ftype, item.value.span, f"`{path}` of program `{program}`"
            )
        message = _b(ir.FString, parts=(f"expected {path} = ", value, ", got ", target))
        return _b(
            ir.Check,
            severity="assert",
            cond=_b(ir.BinOp, op="==", left=target, right=value),
            message=message,
            loc=self.rec.loc(item.span),
        )

    def report_unused(self, all_decls: list[tuple[ParsedFile, Any]]) -> None:
        used = {r.key for r in self.rec.references}
        for pf, decl in all_decls:
            if pf.source.path != self.root:
                continue
            kind = _TOP_KINDS.get(type(decl))
            # Programs, data and metrics are entry points: `dsx run/eval --data/--metric` use them.
            if kind in (None, "program", "data", "metric"):
                continue
            ident = decl.alias if isinstance(decl, ast.UseDecl) else decl.name
            if ident.name in self.rec.broken_words:
                continue  # perhaps used by a block with a syntax error
            if ident.name not in used and self.names.decls.get(ident.name, (None, None))[1] is decl:
                self.rec.error(
                    DiagnosticCode.UNUSED_DECLARATION,
                    f"{kind} `{ident.name}` is never used",
                    ident.span,
                    severity="warning",
                )


def _has_default(p: Any) -> bool:
    if isinstance(p, ir.Param):
        return p.default is not None
    if isinstance(p, ir.Field):
        return p.has_default or p.type.kind == "optional"
    return False
