"""Comprehensions with several `for` clauses (issue 16): `[x for xs in xss for x in xs if x]`
is parsed, checked, formatted, interpreted and generated; each later clause is nested in the
one before and sees its names, as in Python."""

from __future__ import annotations

import asyncio
import importlib.util
import sys

import pytest

import dsx
from dsx.compiler._pyfmt import layout
from dsx.compiler.analysis import analyze_source
from dsx.compiler.codegen import generate
from dsx.compiler.formatter import format_source
from dsx.grammar import ast
from dsx.grammar.parser import parse
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


def _prompt(program, inputs: dict, *, use_async: bool = False) -> str:
    lm = FunctionLM(lambda messages: {"y": "ok"})
    with dsx.context(lm=lm):
        if use_async:
            asyncio.run(program.acall(**inputs))
        else:
            program(**inputs)
    return lm.history[-1]["messages"][-1]["content"]


BODY = """
flat  = [x for row in xss for x in row if x]
pairs = [i * 10 + j for i, row in enumerate(xss) if len(row) > 0 for j in row if j != 2]
chars = [c for w in words if w != "skip" for c in w if c != "b"]
grid  = [[a, b] for a in [1, 2] for b in [a, a + 1] if a + b > 2]
row   = "outer"
return p(x = "{flat} {pairs} {chars} {grid} {row}")
"""
PROGRAM = _module("xss: list[list[int]], words: list[str]", BODY)
INPUTS = {"xss": [[1, 0, 2], [], [3, 4]], "words": ["ab", "skip", "cb"]}
# What Python computes for the same comprehensions (and `row` does not leak).
EXPECTED = "[1, 2, 3, 4] [1, 0, 23, 24] ['a', 'c'] [[1, 2], [2, 2], [2, 3]] outer"


def test_several_for_clauses_run_the_same_interpreted_and_generated(tmp_path):
    analysis = analyze_source(PROGRAM, str(tmp_path / "comp.dsx"))
    assert analysis.diagnostics == [], [d.message for d in analysis.diagnostics]
    code = generate(analysis.unit, "m")
    assert "for row in xss for x in row if x]" in code
    built = _import(code, tmp_path, "comp_gen").program()
    interpreted = dsx.instantiate(analysis.unit).program("m")
    prompts = {
        _prompt(program, INPUTS, use_async=use_async)
        for program in (interpreted, built)
        for use_async in (False, True)
    }
    assert len(prompts) == 1, prompts
    assert EXPECTED in prompts.pop()


def test_the_clauses_parse_in_order_with_their_conditions():
    pf = parse(PROGRAM)
    assert pf.diagnostics == []
    comp = pf.decls[1].forward.body[1].value
    assert isinstance(comp, ast.ListComp)
    assert [t.name for t in comp.targets] == ["i", "row"] and len(comp.conds) == 1
    assert [[t.name for t in c.targets] for c in comp.more] == [["j"]]
    assert len(comp.more[0].conds) == 1
    assert PROGRAM[comp.more[0].span.start : comp.more[0].span.end] == "for j in row if j != 2"


def test_the_formatter_keeps_every_clause_and_is_stable():
    messy = PROGRAM.replace(
        "[x for row in xss for x in row if x]", "[ x  for row in xss\n    for x in row  if x ]"
    )
    assert messy != PROGRAM
    once = format_source(messy)
    assert "flat  = [x for row in xss for x in row if x]" in once
    assert format_source(once) == once
    assert format_source(PROGRAM) == PROGRAM


def test_a_long_comprehension_puts_each_clause_on_its_own_line():
    long = (
        "values = [first_value + 1000000000 for first_row in xss if len(first_row) > 0"
        " for first_value in first_row if first_value != 2]\nreturn p(x = words[0])"
    )
    text = format_source(_module("xss: list[list[int]], words: list[str]", long))
    assert (
        "        values = [\n"
        "            first_value + 1000000000\n"
        "            for first_row in xss\n"
        "            if len(first_row) > 0\n"
        "            for first_value in first_row\n"
        "            if first_value != 2\n"
        "        ]\n"
    ) in text
    assert format_source(text) == text
    assert analyze_source(text, "t.dsx").diagnostics == []


def _diags(body: str):
    text = _module("xss: list[list[int]], words: list[str]", body + "\nreturn p(x = words[0])")
    analysis = analyze_source(text, "t.dsx")
    return text, [d for d in analysis.diagnostics if d.code != "DSX200"]


def test_a_later_clause_types_its_names_from_the_earlier_ones():
    # `x` is an int (an item of a list[int] row): `.answer` on it is an error.
    text, diags = _diags("ys = [x.answer for row in xss for x in row]")
    assert [d.code for d in diags] == ["DSX100"], [d.message for d in diags]
    assert "`int` value" in diags[0].message
    # An unpacking that does not fit the later clause's items is located on its iterable.
    text, diags = _diags("ys = [a for w in words for a, b in w]")
    assert [d.code for d in diags] == ["DSX113"]
    assert "cannot be unpacked" in diags[0].message
    assert text[diags[0].span.start : diags[0].span.end] == "w"
    _, clean = _diags("ys = [x + 1 for row in xss for x in row if x > 0]")
    assert clean == []


@pytest.mark.parametrize(
    "body",
    [
        # a later clause's names are not seen by an earlier clause's iterable
        "ys = [x for row in x for x in xss]",
        # nor after the comprehension
        "ys = [x for row in xss for x in row]\nz = x",
    ],
)
def test_the_names_of_a_clause_are_its_own(body):
    _, diags = _diags(body)
    assert [d.code for d in diags] == ["DSX100"] and "`x`" in diags[0].message


def test_generated_layout_keeps_a_for_clause_whole():
    # Found by the differential test once it drew two-`for` comprehensions: a clause
    # `for w in [...]` too long for its line was split at its `in` (as if an operator) into
    # `for w` / `in [`, which ruff format rewrites; ruff splits the list instead.
    names = "a_rather_long_variable_name_number_1, a_rather_long_variable_name_number_2"
    line = f"values = [w + c for w in [{names}] if len(w) > 2 for c in w if c != x]"
    assert layout(line, "        ") == [
        "        values = [",
        "            w + c",
        "            for w in [",
        "                a_rather_long_variable_name_number_1,",
        "                a_rather_long_variable_name_number_2,",
        "            ]",
        "            if len(w) > 2",
        "            for c in w",
        "            if c != x",
        "        ]",
    ]
