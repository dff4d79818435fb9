"""Language additions (issue 16, item 3): `break`/`continue`, bounded `while`, tuple
unpacking in `for`, augmented and item assignment, slicing, conditional expressions, list
comprehensions and `is none`. Each is checked, formatted, interpreted and generated; the
interpreter and the generated module (sync and async) must agree."""

from __future__ import annotations

import asyncio
import importlib.util
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsx
from dsx.compiler.analysis import analyze_source
from dsx.compiler.codegen import generate
from dsx.compiler.formatter import format_source
from dsx.grammar import ast
from dsx.grammar.parser import parse
from dsx.runtime._interp import LoopLimitError
from dsx.testing import FunctionLM

HEAD = "signature S {\n    in  x: str\n    out y: str\n}\n\n"


def _module(params: str, body: str) -> str:
    lines = "\n".join("        " + line if line else "" for line in body.strip().splitlines())
    return (
        HEAD + "module M {\n    p = Predict(S)\n\n"
        f"    forward({params}) {{\n{lines}\n    }}\n}}\n\nprogram m = M()\n"
    )


def _import(code: str, tmp_path, name: str):
    path = tmp_path / f"{name}.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def _both(text: str, tmp_path, name: str = "gen"):
    """The program run by the interpreter and by its generated module."""
    analysis = analyze_source(text, str(tmp_path / f"{name}.dsx"))
    assert analysis.diagnostics == [], [d.message for d in analysis.diagnostics]
    built = _import(generate(analysis.unit, "m"), tmp_path, f"{name}_gen")
    return dsx.instantiate(analysis.unit).program("m"), built.program()


def _prompt(program, inputs: dict, *, use_async: bool = False) -> str:
    lm = FunctionLM(lambda messages: {"y": "ok"})
    with dsx.context(lm=lm):
        if use_async:
            asyncio.run(program.acall(**inputs))
        else:
            program(**inputs)
    return lm.history[-1]["messages"][-1]["content"]


EVERYTHING = _module(
    "x: str, xs: list[str], d: dict[str, int]",
    """
total = 0
for i, w in enumerate(xs) {
    if w == "skip" {
        continue
    }
    if w == "stop" {
        break
    }
    total += i
}
n = 7
while n > 0 max 10 {
    n -= 2
    if n == 3 {
        continue
    }
}
counts = {}
for k, v in d.items() {
    counts[k] = v * 2
    counts[k] += 1
}
pairs = [a + b for a, b in zip(xs, xs) if a != "skip" if a != "c"]
firsts = [w[:1] for w in xs if w != "skip"]
label = "long" if len(xs) > 2 else "short"
nested = "a" if n < 0 else "b" if n == 0 else "c"
parts = x[1:] + x[:-1] + x[::-1] + x[1:4:2] + x[len(x) - 2 :]
missing = d.get("zzz")
flags = [missing is none, x is not none, (missing if missing else 0) + 1]
return p(x = "{total} {n} {counts} {pairs} {firsts} {label} {nested} {parts} {flags} {x[1:3]}")
""",
)


def test_every_addition_runs_the_same_interpreted_and_generated(tmp_path):
    interpreted, built = _both(EVERYTHING, tmp_path)
    inputs = {"x": "hello", "xs": ["a", "skip", "bb", "stop", "c"], "d": {"a": 1, "b": 2}}
    prompts = [
        _prompt(interpreted, inputs),
        _prompt(built, inputs),
        _prompt(interpreted, inputs, use_async=True),
        _prompt(built, inputs, use_async=True),
    ]
    assert len(set(prompts)) == 1, prompts
    expected = (
        "2 -1 {'a': 3, 'b': 5} ['aa', 'bbbb', 'stopstop'] ['a', 'b', 's', 'c'] long a "
        "ellohellollehello [True, True, 1] el"
    )
    assert expected in prompts[0]


WHILE = _module(
    "x: str, limit: int",
    """
n = 0
while n < 100 max limit {
    n += 1
}
return p(x = "{n}")
""",
)


@pytest.mark.parametrize("use_async", [False, True])
def test_a_while_loop_past_its_bound_is_a_clear_error_in_both_paths(tmp_path, use_async):
    interpreted, built = _both(WHILE, tmp_path, f"loop{int(use_async)}")
    for program in (interpreted, built):
        assert "100" in _prompt(program, {"x": "", "limit": 100}, use_async=use_async)
        with pytest.raises(LoopLimitError) as err:
            _prompt(program, {"x": "", "limit": 3}, use_async=use_async)
        message = str(err.value)
        assert f"loop{int(use_async)}.dsx:11" in message  # the `while` line
        assert "ran its body 3 times (its bound, `max 3`)" in message
        assert "raise the bound" in message
        with pytest.raises(dsx.DsxError, match="must be a whole number"):
            _prompt(program, {"x": "", "limit": -1}, use_async=use_async)


# -- the checker ----------------------------------------------------------------------------


def _diags(body: str, params: str = "x: str, xs: list[str]"):
    text = _module(params, body + "\nreturn p(x = x)")
    analysis = analyze_source(text, "t.dsx")
    return text, [d for d in analysis.diagnostics if d.code != "DSX200"]


@pytest.mark.parametrize("word", ["break", "continue"])
def test_break_and_continue_outside_a_loop(word):
    text, diags = _diags(f"if x {{\n    {word}\n}}")
    assert [d.code for d in diags] == ["DSX127"]
    assert text[diags[0].span.start : diags[0].span.end] == word
    _, inside = _diags(f"for w in xs {{\n    {word}\n}}\nwhile x max 2 {{\n    {word}\n}}")
    assert inside == []


def test_a_while_loop_needs_an_int_bound_with_a_fix():
    text, diags = _diags('y = x\nwhile y == "" {\n    y = "a"\n}')
    assert [d.code for d in diags] == ["DSX128"]
    assert text[diags[0].span.start : diags[0].span.end] == "while"
    assert diags[0].fix is not None
    edit = diags[0].fix.edits[0]
    fixed = text[: edit.span.start] + edit.new_text + text[edit.span.end :]
    assert 'while y == "" max 10 {' in fixed
    assert analyze_source(fixed, "t.dsx").diagnostics == []
    text, diags = _diags('y = x\nwhile y == "" max "ten" {\n    y = "a"\n}')
    assert [d.code for d in diags] == ["DSX128"] and "got str" in diags[0].message
    assert text[diags[0].span.start : diags[0].span.end] == '"ten"'
    text, diags = _diags('y = x\nwhile y == "" max -1 {\n    y = "a"\n}')
    assert [d.code for d in diags] == ["DSX128"] and ">= 0" in diags[0].message
    assert text[diags[0].span.start : diags[0].span.end] == "-1"


@pytest.mark.parametrize(
    ("stmt", "target", "words"),
    [
        ("pred.y = x", "pred", "cannot assign to an attribute"),
        ('pred["y"] = x', "pred", "a prediction is read-only"),
        ('x[0] = "a"', "x", "a str cannot be changed"),
        ("p += 1", "p", "`p` is a member"),
    ],
)
def test_assignments_to_what_cannot_change(stmt, target, words):
    text, diags = _diags(f"pred = p(x = x)\n{stmt}")
    assert [d.code for d in diags] == ["DSX129"], [d.message for d in diags]
    assert words in diags[0].message
    assert text[diags[0].span.start : diags[0].span.end].startswith(target)


def test_is_compares_with_none_only():
    text, diags = _diags('if x is "a" {\n    y = x\n}\nok = x is not none')
    assert [d.code for d in diags] == ["DSX130"]
    assert text[diags[0].span.start : diags[0].span.end] == '"a"'
    assert "`==`" in diags[0].message


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("for a, b in xs {\n    print(a)\n}", "each item is str, which cannot be unpacked"),
        ("for a, b, c in enumerate(xs) {\n    print(a)\n}", "(2 values), unpacked into 3"),
        ('s = "a"\ns += 1', "`+=` cannot combine str with int"),
        ('t = xs[1:"a"]', "a slice bound is an int, got str"),
    ],
)
def test_types_flow_through_the_additions(body, words):
    _, diags = _diags(body)
    assert [d.code for d in diags] == ["DSX113"] and words in diags[0].message, diags


def test_unpacked_and_comprehension_names_have_their_types():
    # `w` is a str (from enumerate over list[str]): reading `.answer` on it is an error.
    _, diags = _diags("for i, w in enumerate(xs) {\n    a = w.answer\n}")
    assert [d.code for d in diags] == ["DSX100"] and "`str` value" in diags[0].message
    _, diags = _diags("ys = [w.answer for w in xs]")
    assert [d.code for d in diags] == ["DSX100"]
    # Comprehension names stay inside the comprehension.
    _, diags = _diags("ys = [w for w in xs]\nz = w")
    assert [d.code for d in diags] == ["DSX100"] and "`w`" in diags[0].message


# -- syntax and layout ----------------------------------------------------------------------


def _stmts(body: str) -> tuple:
    pf = parse(_module("x: str", body + "\nreturn p(x = x)"))
    assert pf.diagnostics == [], pf.diagnostics
    return pf.decls[1].forward.body


def test_an_if_statement_and_a_conditional_expression_are_told_apart():
    stmts = _stmts('y = x\nif y == "a" {\n    y = "b"\n}\nz = y if y else "c"')
    assert [type(s).__name__ for s in stmts[:3]] == ["Assign", "If", "Assign"]
    assert isinstance(stmts[2].value, ast.IfExp)
    # Newlines are not significant: an `if` whose block opens before any `else` is a statement.
    stmts = _stmts('y = x if y {\n    y = "b"\n}\nz = y\n    if y\n    else "c"')
    assert [type(s).__name__ for s in stmts[:3]] == ["Assign", "If", "Assign"]
    assert isinstance(stmts[2].value, ast.IfExp)
    stmts = _stmts('y = x\nif y in {"a": 1} {\n    y = "b"\n}')
    assert isinstance(stmts[1], ast.If)
    # Inside brackets a line may start with `if`.
    stmts = _stmts('z = (\n    x\n    if x\n    else "c"\n)')
    assert isinstance(stmts[0].value, ast.IfExp)
    stmts = _stmts('z = [w for w in x\n    if w != "a"]')
    assert isinstance(stmts[0].value, ast.ListComp) and len(stmts[0].value.conds) == 1


def test_the_formatter_lays_out_the_additions():
    messy = _module(
        "x: str, xs: list[str]",
        """
total=0
for i,w in enumerate(xs) { if w=="a" { continue }
    total+=i }
while total>0 max 10 { total-=1
  break }
d = {}
d[x]=1
d[x]  *=  2
ys=[(w[:1]) for w in xs if w!="b"]
z = (x if x else "n") + x[ : -1]
q = x[1:2:3]
ok = x is not none
return p(x = x if x else "none")
""",
    )
    formatted = format_source(messy, "t.dsx", on_mismatch="raise")
    for line in [
        "        for i, w in enumerate(xs) {",
        "            total += i",
        "        while total > 0 max 10 {",
        "            break",
        "        d[x] *= 2",
        '        ys = [w[:1] for w in xs if w != "b"]',
        '        z  = (x if x else "n") + x[:-1]',
        "        q  = x[1:2:3]",
        "        ok = x is not none",
        '        return p(x = x if x else "none")',
    ]:
        assert line in formatted.splitlines(), (line, formatted)
    assert format_source(formatted, "t.dsx", on_mismatch="raise") == formatted


# -- differential: random bodies using the additions, interpreter vs generated module -------

_VALUE = st.sampled_from(["a", "b", "len(xs)", "0", "1", "3", "a + 1", "b * 2", "-a"])
_COND = st.sampled_from(["a > b", "a == 3", "b in xs", "len(xs) > 2", "xs[:1] == [a]", "a is none"])


@st.composite
def _stmt(draw, depth: int = 0, in_loop: bool = False) -> list[str]:
    kinds = ["aug", "cond", "slice", "comp", "setitem"]
    if depth < 2:
        kinds += ["for", "while"]
    if in_loop:
        kinds += ["break", "continue"]
    kind = draw(st.sampled_from(kinds))
    v, w, c = draw(_VALUE), draw(_VALUE), draw(_COND)
    target = draw(st.sampled_from(["a", "b"]))
    if kind == "aug":
        op = draw(st.sampled_from(["+=", "-=", "*="]))
        return [f"{target} {op} {v if op != '*=' else draw(st.sampled_from(['2', '-1']))}"]
    if kind == "cond":
        return [f"{target} = {v} if {c} else {w}"]
    if kind == "slice":
        lo, hi = draw(st.sampled_from(["", "1", "-1", "a"])), draw(st.sampled_from(["", "2", "-1"]))
        return [f"xs = xs[{lo}:{hi}] + [{v}]"]
    if kind == "comp":
        # Long enough to be laid out over several lines in the generated module.
        return [
            f"xs = [x * 2 if x > {v} else x for i, x in enumerate(xs) if i != {w} and x != {v}]"
        ]
    if kind == "setitem":
        return ["if len(xs) > 0 {", f"    xs[0] += {v}", "}"]
    if kind in ("break", "continue"):
        return [f"if {c} {{", f"    {kind}", "}"]
    body = draw(st.lists(_stmt(depth + 1, True), min_size=1, max_size=3))
    inner = ["    " + line for lines in body for line in lines]
    if kind == "for":
        return ["for i, x in enumerate(xs[:4]) {", "    a += x", *inner, "}"]
    return [f"while {c} max 3 {{", "    b += 1", *inner, "}"]


def _outcome(program, inputs: dict, *, use_async: bool = False) -> str:
    try:
        result = asyncio.run(program.acall(**inputs)) if use_async else program(**inputs)
    except Exception as exc:  # both paths must fail the same way
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return repr(result)


_RUNS = {"n": 0}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(_stmt(), min_size=1, max_size=5), st.lists(st.integers(-3, 5), max_size=5))
def test_random_bodies_run_the_same_interpreted_and_generated(tmp_path, stmts, xs):
    body = [line for lines in stmts for line in lines]
    prelude = ["a = a0", "b = b0", "xs = xs0[:]"]  # parameters cannot be reassigned
    text = _module(
        "a0: int, b0: int, xs0: list[int]",
        "\n".join([*prelude, *body, "return Prediction(a = a, b = b, xs = xs)"]),
    )
    _RUNS["n"] += 1
    interpreted, built = _both(text, tmp_path, f"diff{_RUNS['n']}")
    inputs = {"a0": 2, "b0": 1, "xs0": xs}
    outcomes = {
        _outcome(interpreted, inputs),
        _outcome(built, inputs),
        _outcome(built, inputs, use_async=True),
    }
    assert len(outcomes) == 1, (text, outcomes)
    assert format_source(text, "t.dsx", on_mismatch="raise") == format_source(
        format_source(text, "t.dsx"), "t.dsx"
    )
