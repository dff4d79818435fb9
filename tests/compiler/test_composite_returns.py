"""Composite returns (issue 16, item 2): a forward body builds its result with
`Prediction(...)` or a record constructor; the result is typed (`.answer` on a module call,
`expect answer` in tests are checked) and runs the same interpreted and generated."""

from __future__ import annotations

import importlib.util
import sys

import pytest

import dsx
from dsx.compiler.analysis import analyze_source
from dsx.compiler.codegen import generate
from dsx.runtime import _interp
from dsx.testing import FunctionLM

SOURCE = """type Meta {
    source: str
    rank: int = 0
}

type Verdict {
    label: str
    score: float
    meta: Meta?
}

signature S {
    in  x: str
    out y: str
}

module Pick {
    p = Predict(S)

    forward(x: str) {
        pred = p(x = x)
        return Prediction(answer = pred.y, length = len(x), words = [w.upper() for w in x.split()])
    }
}

module Judge {
    pick = Pick()

    forward(x: str) {
        got = pick(x = x)
        return Verdict(label = got.answer, score = got.length * 1.5, meta = Meta(source = x))
    }
}

module Outer {
    judge = Judge()

    forward(x: str) {
        v = judge(x = x)
        return Prediction(final = "{v.label}/{v.score}/{v.meta.source}/{v.meta.rank}")
    }
}

program pick = Pick()
program judge = Judge()
program outer = Outer()

test picks for pick {
    given  x = "a b"
    expect answer = "ok"
    expect length = 3
    assert result.words == ["A", "B"]
}

test judges for judge {
    given  x = "hello"
    expect label = "ok"
    expect score = 7.5
}
"""


def _generated(unit, program: str, tmp_path):
    name = f"composite_{program}"
    path = tmp_path / f"{name}.py"
    path.write_text(generate(unit, program))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves the records' annotations in the module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module.program()


def _run(program, **inputs):
    with dsx.context(lm=FunctionLM(lambda messages: {"y": "ok"})):
        return program(**inputs)


def test_composite_results_run_the_same_interpreted_and_generated(tmp_path):
    analysis = analyze_source(SOURCE, str(tmp_path / "composite.dsx"))
    assert analysis.diagnostics == [], [d.message for d in analysis.diagnostics]
    ns = dsx.instantiate(analysis.unit)
    results = {}
    for name in ("pick", "judge", "outer"):
        interpreted = _run(ns.program(name), x="hello world")
        built = _run(_generated(analysis.unit, name, tmp_path), x="hello world")
        assert repr(interpreted) == repr(built)
        results[name] = interpreted
    assert results["pick"].answer == "ok" and results["pick"].words == ["HELLO", "WORLD"]
    assert type(results["judge"]).__name__ == "Verdict" and results["judge"].score == 16.5
    assert results["outer"].final == "ok/16.5/hello world/0"


def test_test_blocks_expect_the_fields_of_a_composite_result(tmp_path):
    # What `dsx test` does for each block: run the program, compare each expected field.
    analysis = analyze_source(SOURCE, str(tmp_path / "composite.dsx"))
    ns = dsx.instantiate(analysis.unit)
    for test in analysis.unit.tests:
        env = ns._env()
        given = {k: _interp.run_sync(_interp.eval_expr(v, env)) for k, v in test.given}
        result = _run(ns.program(test.program), **given)
        for key, expr in test.expect:
            assert getattr(result, key) == _interp.run_sync(_interp.eval_expr(expr, env)), key
        env["result"] = result
        for check in test.checks:
            assert _interp.run_sync(_interp.eval_expr(check.cond, env))


BAD = {
    "got = pick(x = x)\n        a = got.answr": ("DSX112", "did you mean `answer`?", "answr"),
    'v = Verdict(label = "a", scor = 1.0)': ("DSX115", "did you mean `score`?", "scor"),
    'v = Verdict(label = "a")': ("DSX116", "`Verdict` needs `score = ...`", None),
    "v = Verdict(label = 3, score = 1.0)": ("DSX113", "expects str, got int", "3"),
    'v = Verdict("a", score = 1.0)': ("DSX114", "takes its fields as keywords", '"a"'),
    "v = Prediction(items = 1)": ("DSX107", "call it `item_list`", "items"),
    "v = Prediction(1)": ("DSX114", "`Prediction(answer = a)`", "1"),
    "v = Verdict": ("DSX106", "build a value of it with `Verdict(field = ...)`", "Verdict"),
}


@pytest.mark.parametrize("stmt", list(BAD))
def test_composite_results_are_checked(stmt):
    code, words, spanned = BAD[stmt]
    text = SOURCE.replace("got = pick(x = x)\n", stmt + "\n        got = pick(x = x)\n", 1)
    diags = [d for d in analyze_source(text, "t.dsx").diagnostics if d.code != "DSX200"]
    assert [d.code for d in diags] == [code], [d.message for d in diags]
    assert words in diags[0].message
    if spanned is not None:
        assert text[diags[0].span.start : diags[0].span.end] == spanned


def test_a_literal_field_of_a_prediction_is_a_str():
    text = SOURCE.replace("length = len(x)", 'length = "long"')
    diags = analyze_source(text, "t.dsx").diagnostics
    # `got.length * 1.5` in Judge is fine for Python, but `expect length = 3` is not.
    assert [d.code for d in diags] == ["DSX113"], [d.message for d in diags]
    assert "output `length` of program `pick` expects str, got int" in diags[0].message


def test_expect_on_a_composite_result_is_checked():
    text = SOURCE.replace("expect length = 3", "expect lenght = 3\n    expect answer = 3")
    diags = analyze_source(text, "t.dsx").diagnostics
    assert [d.code for d in diags] == ["DSX124", "DSX113"], [d.message for d in diags]
    assert "did you mean `length`?" in diags[0].message
    assert "output `answer` of program `pick` expects str, got int" in diags[1].message
    text = SOURCE.replace('expect label = "ok"', 'expect labl = "ok"')
    diags = analyze_source(text, "t.dsx").diagnostics
    assert [d.code for d in diags] == ["DSX124"] and "did you mean `label`?" in diags[0].message


# -- test blocks: record literals in `given`, nested paths in `expect` ----------------------

RECORD_TESTS = """
type Ticket {
    title: str
    meta: Meta
}

signature T {
    in  ticket: Ticket
    out y: str
}

program tp = Predict(T)

test with_record for tp {
    given  ticket = Ticket(title = "x", meta = Meta(source = "s"))
    expect y = "ok"
}

test with_dict for tp {
    given  ticket = {"title": "x", "meta": {"source": "s"}}
    expect y = "ok"
}
"""


def _run_test_blocks(text: str, tmp_path) -> dict[str, list[str]]:
    """Each test block's failures, found the way `dsx test` finds them."""
    analysis = analyze_source(text, str(tmp_path / "blocks.dsx"))
    assert analysis.diagnostics == [], [d.message for d in analysis.diagnostics]
    ns = dsx.instantiate(analysis.unit)
    failures: dict[str, list[str]] = {}
    for test in analysis.unit.tests:
        env = ns._env()
        given = {k: _interp.run_sync(_interp.eval_expr(v, env)) for k, v in test.given}
        result = _run(ns.program(test.program), **given)
        problems = [
            key
            for key, expr in test.expect
            if getattr(result, key) != _interp.run_sync(_interp.eval_expr(expr, env))
        ]
        env["result"] = result
        for check in test.checks:
            if not _interp.run_sync(_interp.eval_expr(check.cond, env)):
                problems.append(str(_interp.run_sync(_interp.eval_expr(check.message, env))))
        failures[test.name] = problems
    return failures


def test_record_literals_in_given_and_nested_expect(tmp_path):
    nested = 'expect score = 7.5\n    expect meta.source = "hello"\n    expect meta.rank = 0'
    text = SOURCE.replace("expect score = 7.5", nested) + RECORD_TESTS
    assert _run_test_blocks(text, tmp_path) == {
        "picks": [],
        "judges": [],
        "with_record": [],
        "with_dict": [],
    }
    wrong = text.replace('expect meta.source = "hello"', 'expect meta.source = "bye"')
    failures = _run_test_blocks(wrong, tmp_path)
    assert failures["judges"] == ["expected meta.source = bye, got hello"]


@pytest.mark.parametrize(
    ("item", "code", "words"),
    [
        ("expect meta.rnk = 0", "DSX124", "unknown field of `Meta`: `rnk`; did you mean `rank`?"),
        ("expect label.x = 1", "DSX124", "`label` of program `judge` is str, which has no fields"),
        ("expect meta.source = 3", "DSX113", "`meta.source` of program `judge` expects str"),
    ],
)
def test_nested_expect_paths_are_checked(item, code, words):
    text = SOURCE.replace("expect score = 7.5", f"expect score = 7.5\n    {item}")
    diags = analyze_source(text, "t.dsx").diagnostics
    assert [d.code for d in diags] == [code] and words in diags[0].message, diags


def test_a_record_literal_in_given_is_checked():
    text = SOURCE + RECORD_TESTS.replace('Ticket(title = "x", meta', "Ticket(title = 3, meta")
    diags = analyze_source(text, "t.dsx").diagnostics
    assert [d.code for d in diags] == ["DSX113"]
    assert "field `title` of `Ticket` expects str, got int" in diags[0].message
