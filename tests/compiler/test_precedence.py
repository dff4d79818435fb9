"""One precedence table (dsx.grammar.precedence) for the parser, the formatter and codegen
(issue 16): the formatter's .dsx and codegen's Python put parentheses in the same places,
formatting what was parsed parses back to the same tree, and the generated Python computes
what the interpreter computes (comparisons do not chain in .dsx; Python would chain them)."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsx import ir
from dsx.compiler import codegen
from dsx.compiler.formatter import format_source
from dsx.diagnostics import Origin
from dsx.grammar import ast, precedence
from dsx.grammar.parser import parse_expr_text
from dsx.runtime import _interp

MODULE = (
    "signature S {{\n    in  x: str\n    out y: str\n}}\n\nmodule M {{\n    p = Predict(S)\n\n"
    "    forward(a: int, b: int, c: int) {{\n        r = {expr}\n        return p(x = r)\n"
    "    }}\n}}\n"
)
BINARY = list(precedence.PRECEDENCE)


def _parse(text: str) -> Any:
    node, diag = parse_expr_text(text, Origin("e.dsx"), 0)
    assert diag is None, (text, diag.message)
    return node


def _formatted(text: str) -> str:
    """The expression as `dsx fmt` prints it."""
    out = format_source(MODULE.format(expr=text))
    line = next(ln for ln in out.splitlines() if ln.startswith("        r = "))
    return line[len("        r = ") :]


def _to_ir(node: Any) -> Any:
    """The IR the lowerer makes of an operator tree (names, literals and operators only)."""
    if isinstance(node, ast.NameRef):
        return ir.Name(name=node.name.name)
    if isinstance(node, ast.Lit):
        return ir.Const(value=node.value)
    if isinstance(node, ast.BinOp):
        return ir.BinOp(op=node.op, left=_to_ir(node.left), right=_to_ir(node.right))
    if isinstance(node, ast.Not):
        return ir.Unary(op="not", operand=_to_ir(node.operand))
    if isinstance(node, ast.Neg):
        return ir.Unary(op="-", operand=_to_ir(node.operand))
    if isinstance(node, ast.IfExp):
        return ir.IfExp(cond=_to_ir(node.cond), then=_to_ir(node.then), orelse=_to_ir(node.orelse))
    raise AssertionError(type(node).__name__)


_UNIT = ir.Unit(source="e.dsx")


def _python(node: Any) -> str:
    """The Python codegen writes for an IR expression."""
    gen = codegen._Gen.__new__(codegen._Gen)  # an expression printer, no program around it
    gen.unit, gen.locals, gen.scope_params, gen.scope_subs = _UNIT, set(), set(), set()
    return gen.expr(node, 0, False)


def _shape(node: Any) -> Any:
    """An AST without spans (and without a literal's spelling)."""
    if dataclasses.is_dataclass(node):
        fields = [f.name for f in dataclasses.fields(node) if f.name not in ("span", "raw")]
        return (type(node).__name__, *(_shape(getattr(node, f)) for f in fields))
    if isinstance(node, tuple):
        return tuple(_shape(n) for n in node)
    return node


# -- every pair of operators ------------------------------------------------------------------

INNER = [*BINARY, "not", "-", "if"]


def _inner_text(op: str) -> str:
    if op == "not":
        return "not a"
    if op == "-":
        return "-a"
    if op == "if":
        return "a if b else c"
    return f"a {op} b"


@pytest.mark.parametrize(("outer", "inner"), list(itertools.product(BINARY, INNER)))
def test_the_formatter_and_codegen_parenthesize_every_pair_alike(outer, inner):
    for side in ("left", "right"):
        text = (
            f"({_inner_text(inner)}) {outer} c"
            if side == "left"
            else f"c {outer} ({_inner_text(inner)})"
        )
        tree = _parse(text)
        dsx_text = _formatted(text)
        py_text = _python(_to_ir(tree))
        # Both keep the parentheses exactly when the table says the operand needs them.
        assert ("(" in dsx_text) == ("(" in py_text), (text, dsx_text, py_text)
        assert _shape(_parse(dsx_text)) == _shape(tree), (text, dsx_text)


def test_comparisons_never_chain_in_the_output():
    for a, b in itertools.product(
        [op for op in BINARY if precedence.PRECEDENCE[op] == precedence.COMPARISON], repeat=2
    ):
        for text in (f"(a {a} b) {b} c", f"a {a} (b {b} c)"):
            assert "(" in _python(_to_ir(_parse(text))), text
            assert "(" in _formatted(text), text
        # Unparenthesized, the .dsx reads left to right: `(a == b) == c`.
        tree = _parse(f"a {a} b {b} c")
        assert isinstance(tree.left, ast.BinOp) and tree.left.op == a


def test_a_negation_under_a_postfix_operator_keeps_its_parentheses():
    # `(-a).real` in Python is not `-a.real` (that is `-(a.real)`).
    attr = ir.Attr(obj=ir.Unary(op="-", operand=ir.Name(name="a")), name="real")
    assert _python(attr) == "(-a).real"
    index = ir.Index(obj=ir.Unary(op="-", operand=ir.Name(name="a")), index=ir.Const(value=0))
    assert _python(index) == "(-a)[0]"


# -- random expressions -----------------------------------------------------------------------

NUMERIC = ["+", "-", "*", "%", "/"]
COMPARE = ["==", "!=", "<", "<=", ">", ">="]


@st.composite
def trees(draw: Any, depth: int = 0) -> tuple[str, str]:
    """A random expression, fully parenthesized: (.dsx text, the same in Python)."""
    if depth >= 4 or draw(st.integers(0, 3)) == 0:
        leaf = draw(st.sampled_from(["a", "b", "c", "0", "1", "2", "7", "true", "false"]))
        return leaf, {"true": "True", "false": "False"}.get(leaf, leaf)
    kind = draw(st.sampled_from(["num", "cmp", "bool", "not", "neg", "if"]))
    x = draw(trees(depth + 1))
    if kind == "not":
        return f"(not {x[0]})", f"(not {x[1]})"
    if kind == "neg":
        return f"(-{x[0]})", f"(-{x[1]})"
    y = draw(trees(depth + 1))
    if kind == "if":
        z = draw(trees(depth + 1))
        return f"({x[0]} if {y[0]} else {z[0]})", f"({x[1]} if {y[1]} else {z[1]})"
    op = draw(st.sampled_from({"num": NUMERIC, "cmp": COMPARE, "bool": ["and", "or"]}[kind]))
    return f"({x[0]} {op} {y[0]})", f"({x[1]} {op} {y[1]})"


def _value(thunk: Any) -> Any:
    try:
        return ("ok", thunk())
    except ZeroDivisionError:
        return ("error", "ZeroDivisionError")


def _interpret(node: Any, env: dict[str, Any]) -> Any:
    gen = _interp.eval_expr(node, env)
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(tree=trees(), env=st.fixed_dictionaries({n: st.integers(-3, 3) for n in "abc"}))
def test_random_expressions_format_parse_and_run_alike(tree, env):
    text, python = tree
    parsed = _parse(text)
    # parse -> format -> parse gives the same tree
    formatted = _formatted(text)
    assert _shape(_parse(formatted)) == _shape(parsed), (text, formatted)
    assert _formatted(formatted) == formatted
    # codegen's Python computes what the interpreter computes, and what the tree means
    node = _to_ir(parsed)
    generated = _python(node)
    meant = _value(lambda: eval(python, {}, dict(env)))
    assert _value(lambda: eval(generated, {}, dict(env))) == meant, (text, generated)
    assert _value(lambda: _interpret(node, dict(env))) == meant, text
