"""The public semantic model (``dsx.compiler.model``): what editors and tools query instead
of the lowerer's private state."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dsx.compiler.analysis import analyze_source
from dsx.compiler.model import Binding, PredType, SemanticModel
from dsx.grammar import ast
from dsx.grammar.parser import BlockCache

SRC = """\
use python "os.path" as paths

/// Answer with a short factoid.
signature QA {
    in  question: str
    out answer: str  "short"
}

type Citation { source: str, quote: str? }

module Wrap(k: int = 2) {
    qa = ChainOfThought(QA)

    forward(question: str) {
        pred = qa(question = question)
        return pred
    }
}

program top = Wrap(k = 3)
"""


def _model(text: str = SRC) -> SemanticModel:
    analysis = analyze_source(text, "/model/m.dsx")
    assert not analysis.errors, analysis.errors
    model = analysis.model
    assert model is not None
    return model


def test_declarations_and_what_they_mean() -> None:
    model = _model()
    kinds = {d.name: d.kind for d in model.declarations()}
    assert kinds == {
        "paths": "python",
        "QA": "signature",
        "Citation": "type",
        "Wrap": "module",
        "top": "program",
    }
    qa = model.declaration("QA")
    assert qa is not None and isinstance(qa.node, ast.SignatureDecl)
    assert model.declaration("Nope") is None
    sig = model.signature("QA")
    assert sig is not None and [f.name for f in sig.outputs] == ["answer"]
    rec = model.record("Citation")
    assert rec is not None and [f.name for f in rec.fields] == ["source", "quote"]
    imp = model.python_import("paths")
    assert imp is not None and imp.module == "os.path"


def test_module_members_and_result() -> None:
    info = _model().module("Wrap")
    assert info is not None
    assert list(info.params) == ["k"]
    member = info.members["qa"]
    assert (member.kind, member.signature and member.signature.name) == ("ChainOfThought", "QA")
    assert info.forward is not None
    assert isinstance(info.returns, PredType)
    assert set(info.returns.fields) == {"reasoning", "answer"}


def test_program_inputs_and_outputs() -> None:
    model = _model()
    io = model.program_io("top")
    assert io is not None
    assert list(io.inputs) == ["question"]
    assert [m.name for m in model.members_of(io.outputs)] == ["reasoning", "answer"]
    assert model.program_io("Wrap") is None


def test_scope_bindings_types_and_call_inputs() -> None:
    model = _model()
    scope = model.scope("Wrap")
    assert scope["k"] == Binding("k", "param", "Wrap(k)", "int")
    assert scope["question"].kind == "param"
    assert scope["pred"].kind == "local"
    assert scope["qa"].kind == "sub"
    assert scope["paths"].kind == "python"
    assert scope["len"].kind == "builtin"
    assert "nope" not in scope
    inputs = model.call_inputs("qa", scope)
    assert inputs is not None and [m.name for m in inputs] == ["question"]
    info = model.module("Wrap")
    assert info is not None
    ret = info.node.forward.body[-1]
    assert isinstance(ret, ast.Return)
    t = model.type_of(ret.value, scope)
    assert isinstance(t, PredType) and "answer" in t.fields
    # Asking records nothing: the references and symbols stay as checked.
    n_refs = len(model.references)
    model.type_of(ret.value, scope)
    assert len(model.references) == n_refs
    top = model.scope()
    assert "pred" not in top and top["paths"].kind == "python"


def test_references_to_a_symbol() -> None:
    model = _model()
    spans = [(r.span.start, r.span.end) for r in model.references_to("QA")]
    starts = [m.start() for m in re.finditer(r"\bQA\b", SRC)]
    # the definition is a symbol, not a reference; the member's use of it is one
    assert model.symbols["QA"].span.start == starts[0]
    assert spans == [(s, s + 2) for s in starts[1:]]
    assert model.references_to("nothing") == []


def test_model_follows_an_incremental_recheck() -> None:
    caches: dict[str, BlockCache] = {}
    first = analyze_source(SRC, "/model/m.dsx", caches=caches)
    edited = SRC.replace('out answer: str  "short"', 'out answer: str  "short"\n    out why: str')
    second = analyze_source(edited, "/model/m.dsx", caches=caches, previous=first)
    assert second.incremental
    model = second.model
    assert model is not None
    sig = model.signature("QA")
    assert sig is not None and [f.name for f in sig.outputs] == ["answer", "why"]
    io = model.program_io("top")
    assert io is not None
    assert [m.name for m in model.members_of(io.outputs)] == ["reasoning", "answer", "why"]


def test_model_module_is_public_and_documented() -> None:
    import dsx.compiler.model as m

    for name in m.__all__:
        assert getattr(m, name).__doc__, name
    arch = Path(__file__).resolve().parents[2] / "docs" / "ARCHITECTURE.md"
    assert "dsx.compiler.model" in arch.read_text(encoding="utf-8")


def test_editor_features_query_the_model_not_the_lowerer() -> None:
    lsp = Path(__file__).resolve().parents[2] / "src" / "dsx" / "lsp"
    offenders = sorted(
        p.name
        for p in lsp.glob("*.py")
        if re.search(r"\.lowerer\b|_lower_|Lowerer", p.read_text(encoding="utf-8"))
    )
    assert offenders == []


def test_ir_validation_is_on_in_tests_and_catches_a_wrongly_typed_node() -> None:
    import os

    from dsx import ir
    from dsx.compiler.lower import validate_unit

    assert os.environ.get("DSX_VALIDATE_IR") == "1"  # tests/conftest.py switches it on
    unit = analyze_source(SRC, "/model/m.dsx").unit
    validate_unit(unit)  # what the checker built is valid
    bad = ir.build(ir.Signature, name=3, fields=())  # built unchecked, as the lowerer does
    with pytest.raises(AssertionError, match="invalid IR for /model/m.dsx"):
        validate_unit(unit.model_copy(update={"signatures": (bad,)}))


def test_incremental_recheck_keeps_declaration_order() -> None:
    # A declaration that fails and is then fixed is checked again on its own: it used to
    # go to the end of the IR's list (regression: found by tests/lsp/test_incremental.py).
    text = (
        "signature S {\n    in q: str\n    out a: str\n}\n\n"
        'data train = jsonl("t.jsonl", inputs = [q])\n\n'
        'data dev = jsonl("d.jsonl", inputs = [q])\n'
    )
    caches: dict[str, BlockCache] = {}
    prev = analyze_source(text, "/model/order.dsx", caches=caches)
    broken = text.replace("train = jsonl(", "train = nothing(")
    prev = analyze_source(broken, "/model/order.dsx", caches=caches, previous=prev)
    assert prev.incremental and prev.errors
    prev = analyze_source(text, "/model/order.dsx", caches=caches, previous=prev)
    assert prev.incremental and not prev.errors
    assert [d.name for d in prev.unit.data] == ["train", "dev"]
    assert prev.unit.to_json() == analyze_source(text, "/model/order.dsx").unit.to_json()


def test_the_checkers_built_ins_are_the_runtimes() -> None:
    # One source of truth: what the checker accepts is what the interpreter can run.
    from dsx.compiler import _env
    from dsx.runtime._interp import BUILTINS
    from dsx.runtime.metrics import BUILTIN_METRICS
    from dsx.teleprompt import optimizer_names

    assert set(BUILTINS) == _env.BUILTIN_FUNCTIONS
    assert set(BUILTIN_METRICS) == _env.BUILTIN_METRICS
    assert set(optimizer_names()) == _env.OPTIMIZERS


def test_the_passes_run_in_order_and_each_can_run_alone() -> None:
    from dsx.compiler.lower import PASSES, Lowerer
    from dsx.grammar.parser import parse

    assert [p.name for p in PASSES] == [
        "declare",
        "types",
        "signatures",
        "resources",
        "module-headers",
        "forwards",
        "project",
        "unused",
    ]
    lowerer = Lowerer([parse(SRC, "/model/passes.dsx")], "/model/passes.dsx")
    lowerer._all_decls = [(pf, d) for pf in lowerer.files for d in pf.decls]
    for step in PASSES[:2]:  # names and types only
        step.run(lowerer)
    assert set(lowerer.decls) == {"paths", "QA", "Citation", "Wrap", "top"}
    assert list(lowerer.records) == ["Citation"] and not lowerer.signatures
    for step in PASSES[2:]:
        step.run(lowerer)
    assert list(lowerer.signatures) == ["QA"] and list(lowerer.programs) == ["top"]
    assert not [d for d in lowerer.diagnostics if d.is_error]


def test_ir_validation_leaves_a_too_deep_unit_alone() -> None:
    # Nesting deeper than pydantic walks is not a lowering bug (regression: the LSP's
    # hostile-document test, 3,000 nested `if`s, lost its diagnostics to the validation).
    import sys

    from dsx import ir
    from dsx.compiler.lower import validate_unit

    body: tuple[object, ...] = (ir.build(ir.Return, value=ir.build(ir.Const, value=1)),)
    for _ in range(1500):
        body = (ir.build(ir.If, cond=ir.build(ir.Const, value=True), then=body),)
    forward = ir.build(ir.Forward, params=(), body=body)
    unit = analyze_source(SRC, "/model/deep.dsx").unit
    module = ir.build(ir.Module, name="Deep", forward=forward)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20_000)
    try:
        validate_unit(unit.model_copy(update={"modules": (module,)}))
    finally:
        sys.setrecursionlimit(limit)
