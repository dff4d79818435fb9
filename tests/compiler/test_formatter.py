"""The formatter (`dsx fmt`): golden layouts, idempotence, unchanged meaning, comments, CLI.

Golden cases are `tests/cases/fmt/NAME.dsx` with the expected output next to them in
`NAME.expected.dsx`; run with DSX_REGEN_GOLDEN=1 to rewrite the expected files.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import os
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsx.cli.fmt import add_parser as add_fmt_command
from dsx.compiler.formatter import WIDTH, check_formatted, format_source, format_with_diagnostics
from dsx.diagnostics import Span
from dsx.grammar.parser import parse

CASES_ROOT = Path(__file__).resolve().parents[1] / "cases"
FMT_CASES = CASES_ROOT / "fmt"
INPUTS = sorted(p for p in FMT_CASES.glob("*.dsx") if not p.name.endswith(".expected.dsx"))
# Every .dsx file under tests/cases (other suites' cases too): all must survive formatting.
ALL_SOURCES = sorted(CASES_ROOT.rglob("*.dsx"))
REGEN = os.environ.get("DSX_REGEN_GOLDEN") == "1"


def fmt(text: str) -> str:
    # "raise": a block whose output would not parse back the same fails the test instead
    # of being kept as written.
    return format_source(text, "case.dsx", on_mismatch="raise")


# ---- structural comparison, spans ignored --------------------------------------------------


def shape(node):
    """A node as plain nested data without spans (written independently of the formatter)."""
    if isinstance(node, Span):
        return "<span>"
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return (
            type(node).__name__,
            {f.name: shape(getattr(node, f.name)) for f in dataclasses.fields(node)},
        )
    if isinstance(node, list | tuple):
        return [shape(x) for x in node]
    return node


def meaning(text: str):
    parsed = parse(text, "case.dsx")
    return (
        [shape(d) for d in parsed.decls],
        [d.message for d in parsed.diagnostics],
        Counter(c.text.rstrip() for c in parsed.comments),
    )


def assert_same_meaning(before: str, after: str) -> None:
    decls_a, errors_a, comments_a = meaning(before)
    decls_b, errors_b, comments_b = meaning(after)
    assert decls_a == decls_b, "the formatted file parses to a different AST"
    assert errors_a == errors_b, "the formatted file has different syntax errors"
    assert comments_a == comments_b, "comments were lost or changed"


def test_shape_ignores_spans_but_not_content():
    assert meaning("program a = f(x)")[0] == meaning("program   a =\n  f( x )")[0]
    assert meaning("program a = f(x)")[0] != meaning("program a = f(y)")[0]
    assert meaning("program a = (a + b) * c")[0] != meaning("program a = a + b * c")[0]


# ---- golden cases ------------------------------------------------------------------------


def test_there_are_golden_cases():
    assert len(INPUTS) >= 6


@pytest.mark.parametrize("case", INPUTS, ids=lambda p: p.stem)
def test_golden(case):
    out = fmt(case.read_text())
    expected = case.with_name(case.stem + ".expected.dsx")
    if REGEN or not expected.exists():
        expected.write_text(out)
    assert out == expected.read_text(), (
        f"layout changed; regenerate with DSX_REGEN_GOLDEN=1 if intended ({expected.name})"
    )


@pytest.mark.parametrize("case", ALL_SOURCES, ids=lambda p: str(p.relative_to(CASES_ROOT)))
def test_idempotent_and_meaning_preserving(case):
    text = case.read_text()
    once = fmt(text)
    assert fmt(once) == once
    assert check_formatted(once)
    assert_same_meaning(text, once)


@pytest.mark.parametrize("case", INPUTS, ids=lambda p: p.stem)
def test_expected_outputs_are_fixed_points(case):
    expected = case.with_name(case.stem + ".expected.dsx")
    if expected.exists():
        assert fmt(expected.read_text()) == expected.read_text()


# ---- specific behaviour --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "printed"),
    [
        ("(a + b) * c", "(a + b) * c"),
        ("a + (b * c)", "a + b * c"),
        ("a - (b - c)", "a - (b - c)"),
        ("(a - b) - c", "a - b - c"),
        ("-(a + b)", "-(a + b)"),
        ("-(-a)", "-(-a)"),
        ("not (a or b)", "not (a or b)"),
        ("(not a) == b", "(not a) == b"),
        ("not (a == b)", "not (a == b)"),
        ("not a + b", "not (a + b)"),
        ("not not a", "not not a"),
        ("not -a.b", "not -a.b"),
        ("(a == b) == c", "(a == b) == c"),
        ("a and (b or c)", "a and (b or c)"),
        ("(a and b) or c", "a and b or c"),
        ("(a + b).c", "(a + b).c"),
        ("(-a).b", "(-a).b"),
        ("(f)(x)", "f(x)"),
        ("((x))", "x"),
        ("f( k=1 , )", "f(k = 1)"),
        ("{ 'k' : 1 }".replace("'", '"'), '{"k": 1}'),
        ("[1,2,]", "[1, 2]"),
        ("1e3 + 0.50", "1e3 + 0.50"),
        ("a not in (b)", "a not in b"),
    ],
)
def test_expressions_get_minimal_parentheses(written, printed):
    assert fmt(f"program p = {written}") == f"program p = {printed}\n"


def test_types_print_canonically():
    out = fmt(
        'type T { a : list[ str ] , b: dict[str,int], c: str ?, d: A|B, e: "a"|"b", f: (A | B)? }'
    )
    assert (
        out
        == 'type T { a: list[str], b: dict[str, int], c: str?, d: A | B, e: "a" | "b", f: (A | B)? }\n'
    )


def test_signature_fields_align_in_columns():
    out = fmt('signature S {\nin a: str "x"\nout longer_name: list[str] "y"\nin b: int\n}')
    assert out == (
        "signature S {\n"
        '    in  a: str                  "x"\n'
        '    out longer_name: list[str]  "y"\n'
        "    in  b: int\n"
        "}\n"
    )


def test_long_calls_break_one_argument_per_line_with_trailing_comma():
    args = ", ".join(f"argument_{i} = {i}" for i in range(12))
    out = fmt(f"program p = Thing({args})")
    lines = out.splitlines()
    assert lines[0] == "program p = Thing("
    assert lines[1] == "    argument_0 = 0,"
    assert lines[-2] == "    argument_11 = 11,"
    assert lines[-1] == ")"
    assert all(len(line) <= WIDTH for line in lines)


def test_comments_trail_lead_or_close_the_list_they_are_in():
    text = (
        "// top\n"
        "module M { // open\n"
        "  a = X(1, // one\n"
        "   2) // after a\n"
        "  forward(q) { if q { return q } // after if\n"
        "  else { // else\n"
        "  } }\n"
        "} // end\n"
        "// bottom\n"
    )
    assert fmt(text) == (
        "// top\n"
        "module M {  // open\n"
        "    a = X(\n"
        "        1,  // one\n"
        "        2,\n"
        "    )  // after a\n"
        "    forward(q) {\n"
        "        if q {\n"
        "            return q\n"
        "            // after if\n"
        "        } else {  // else\n"
        "        }\n"
        "    }\n"
        "}  // end\n"
        "// bottom\n"
    )


def test_doc_comment_inside_a_field_keeps_the_field_as_written():
    text = "signature S {\n  in a: str\n  in   b: /// inside\n     int\n}\n"
    out = fmt(text)
    assert "in   b: /// inside\n     int" in out  # kept exactly
    assert "    in  a: str" in out  # the rest is formatted
    assert_same_meaning(text, out)


def test_doc_comment_in_a_declaration_header_keeps_the_block_as_written():
    text = "signature W /// doc?\n{ in a: str }\n"
    assert fmt(text) == text


def test_syntax_error_block_is_kept_verbatim_and_the_rest_formatted():
    text = "program   a=1\nprogram bad = f(  x\nprogram   c=2\n"
    out, diagnostics = format_with_diagnostics(text)
    assert out == "program a = 1\n\nprogram bad = f(  x\n\nprogram c = 2\n"
    assert len(diagnostics) == 1


def test_blank_lines_between_declarations_and_inside_bodies():
    text = (
        "\n\nprogram a = 1\nprogram b = 2\n\n\n\nmodule M {\n\n  a = X()\n\n\n  b = Y()\n\n}\n\n\n"
    )
    assert (
        fmt(text) == "program a = 1\n\nprogram b = 2\n\nmodule M {\n    a = X()\n\n    b = Y()\n}\n"
    )


def test_imports_written_together_stay_together():
    text = 'use python "a" as a\nimport "b.dsx"\n\nimport "c.dsx"\nprogram p = 1\n'
    assert fmt(text) == 'use python "a" as a\nimport "b.dsx"\n\nimport "c.dsx"\n\nprogram p = 1\n'


def test_one_line_lms_written_together_stay_together_aligned_on_equals():
    text = (
        'lm fast = "openai/m" { temperature = 0 }\n'
        "lm robust = fallback(fast, local)\n"
        'lm local = "local" {\n    max_tokens = 512\n}\n'
        'retriever wiki = Embeddings(corpus = "w.jsonl", embedder = "local")\n'
        'retriever docs2 = Embeddings(corpus = "d.jsonl", embedder = "local")\n\n'
        'lm apart = "openai/x"\n'
        "// about the next one\n"
        'lm commented = "openai/y"\n'
    )
    want = (
        'lm fast   = "openai/m" { temperature = 0 }\n'
        "lm robust = fallback(fast, local)\n"
        'lm local  = "local" { max_tokens = 512 }\n\n'
        'retriever wiki  = Embeddings(corpus = "w.jsonl", embedder = "local")\n'
        'retriever docs2 = Embeddings(corpus = "d.jsonl", embedder = "local")\n\n'
        'lm apart = "openai/x"\n\n'
        "// about the next one\n"
        'lm commented = "openai/y"\n'
    )
    assert fmt(text) == want
    assert fmt(want) == want


def test_empty_and_comment_only_files():
    assert fmt("") == ""
    assert fmt("\n\n  \n") == ""
    assert fmt("// just a note   \n\n\n// another\n") == "// just a note\n\n// another\n"


def test_crlf_input_is_read_as_lf():
    assert fmt("program a = 1\r\n// note\r\n") == "program a = 1\n// note\n"


def test_check_formatted():
    assert check_formatted("program a = 1\n")
    assert not check_formatted("program a=1\n")


# ---- property tests --------------------------------------------------------------------------

_TOKEN = re.compile(r'"""(?:[^"\\]|\\.|"(?!""))*"""|"(?:[^"\\\n]|\\.)*"|//[^\n]*|\s+|\w+|.', re.S)
_INSERTS = [
    " ",
    "\n",
    "\n\n\n",
    "\t  ",
    "  // note\n",
    " /// doc\n",
    "\n// own line\n\n",
    "\n/// doc line\n",
]


def _insertion_points(text: str) -> list[int]:
    # Before a token that does not start a line: inserting there never moves a top-level
    # keyword off column 0 (which would change how the file splits into declarations).
    return [
        m.start()
        for m in _TOKEN.finditer(text)
        if not m.group().isspace() and m.start() > 0 and text[m.start() - 1] != "\n"
    ]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_cases_format_idempotently_without_changing_meaning(data):
    text = data.draw(st.sampled_from(ALL_SOURCES)).read_text()
    points = _insertion_points(text)
    chosen = data.draw(st.lists(st.sampled_from(points), min_size=1, max_size=8, unique=True))
    for point in sorted(chosen, reverse=True):
        text = text[:point] + data.draw(st.sampled_from(_INSERTS)) + text[point:]
    once = fmt(text)
    assert fmt(once) == once
    assert_same_meaning(text, once)


_names = st.sampled_from(["a", "b", "xs", "f", "item", "very_long_variable_name_number_one"])
_atoms = st.one_of(
    _names,
    st.sampled_from(["1", "2.50", "1e3", "true", "false", "none", '"s"', '"a \\"q\\""']),
)


def _compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    binary = st.sampled_from(
        ["or", "and", "==", "!=", "<", ">=", "in", "not in", "+", "-", "*", "/", "%"]
    )
    return st.one_of(
        st.tuples(inner, binary, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda x: f"(not {x})"),
        inner.map(lambda x: f"(-{x})"),
        st.tuples(inner, _names).map(lambda t: f"({t[0]}).{t[1]}"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]})[{t[1]}]"),
        st.tuples(inner, st.lists(st.tuples(st.none() | _names, inner), max_size=4)).map(
            lambda t: f"({t[0]})(" + ", ".join(f"{k} = {v}" if k else v for k, v in t[1]) + ")"
        ),
        st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(inner, inner), max_size=3).map(
            lambda ps: "{" + ", ".join(f"{k}: {v}" for k, v in ps) + "}"
        ),
    )


_exprs = st.recursive(_atoms, _compound, max_leaves=12)


def _stmts(depth: int) -> st.SearchStrategy[str]:
    simple = st.one_of(
        st.tuples(_names, _exprs).map(lambda t: f"{t[0]} = {t[1]}"),
        _exprs.map(lambda e: f"return {e}"),
        st.tuples(st.sampled_from(["assert", "suggest"]), _exprs, st.none() | _exprs).map(
            lambda t: f"{t[0]} {t[1]}" + (f", {t[2]}" if t[2] else "")
        ),
    )
    if depth == 0:
        return simple
    body = st.lists(_stmts(depth - 1), max_size=3).map(lambda ss: "{ " + " ".join(ss) + " }")
    return st.one_of(
        simple,
        st.tuples(_exprs, body, st.none() | body).map(
            lambda t: f"if {t[0]} {t[1]}" + (f" else {t[2]}" if t[2] else "")
        ),
        st.tuples(_names, _exprs, body).map(lambda t: f"for {t[0]} in {t[1]} {t[2]}"),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_stmts(2), min_size=1, max_size=5))
def test_generated_programs_round_trip(stmts):
    # Fully parenthesized on one line: the formatter must drop exactly the parentheses
    # precedence allows and break long lines without changing the AST.
    text = "module M {\n  forward(q) { " + " ".join(stmts) + " }\n}\n"
    assert not parse(text).diagnostics, text
    once = fmt(text)
    assert fmt(once) == once
    assert_same_meaning(text, once)


# ---- the command line ----------------------------------------------------------------------


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="dsx")
    add_fmt_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["fmt", *argv])
    return args.func(args)


UGLY = "program   qa=RAG( k=3 )\n"
PRETTY = "program qa = RAG(k = 3)\n"


def test_cli_formats_in_place_and_only_writes_changed_files(tmp_path, capsys):
    ugly, pretty = tmp_path / "ugly.dsx", tmp_path / "pretty.dsx"
    ugly.write_text(UGLY)
    pretty.write_text(PRETTY)
    os.utime(pretty, ns=(1_000_000_000, 1_000_000_000))
    assert run_cli(str(ugly), str(pretty)) == 0
    assert ugly.read_text() == PRETTY
    assert pretty.stat().st_mtime_ns == 1_000_000_000  # untouched
    assert "reformatted" in capsys.readouterr().err
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_cli_check_lists_files_that_would_change_without_writing(tmp_path, capsys):
    ugly, pretty = tmp_path / "ugly.dsx", tmp_path / "pretty.dsx"
    ugly.write_text(UGLY)
    pretty.write_text(PRETTY)
    assert run_cli("--check", str(ugly), str(pretty)) == 1
    out = capsys.readouterr().out
    assert "ugly.dsx" in out and "pretty.dsx" not in out
    assert ugly.read_text() == UGLY
    assert run_cli("--check", str(pretty)) == 0


def test_cli_diff_prints_a_unified_diff_and_writes_nothing(tmp_path, capsys):
    ugly = tmp_path / "ugly.dsx"
    ugly.write_text(UGLY)
    assert run_cli("--diff", str(ugly)) == 0
    out = capsys.readouterr().out
    assert f"-{UGLY.strip()}" in out and f"+{PRETTY.strip()}" in out and out.startswith("---")
    assert ugly.read_text() == UGLY
    assert run_cli("--check", "--diff", str(ugly)) == 1


def test_cli_syntax_error_is_reported_and_the_rest_formatted(tmp_path, capsys):
    bad = tmp_path / "bad.dsx"
    bad.write_text("program   a=1\nprogram b = f(\nprogram   c=2\n")
    assert run_cli(str(bad)) == 1
    err = capsys.readouterr().err
    assert re.search(
        r"bad\.dsx:2:\d+: syntax error: .*\(formatted the rest, left the bad block as is\)", err
    )
    assert bad.read_text() == "program a = 1\n\nprogram b = f(\n\nprogram c = 2\n"


def test_cli_missing_file_exits_2(tmp_path, capsys):
    assert run_cli(str(tmp_path / "nope.dsx")) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_expands_directories_to_dsx_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.dsx").write_text(UGLY)
    (tmp_path / "sub" / "b.dsx").write_text(UGLY)
    (tmp_path / "notes.txt").write_text(UGLY)
    assert run_cli(str(tmp_path)) == 0
    assert (tmp_path / "a.dsx").read_text() == PRETTY
    assert (tmp_path / "sub" / "b.dsx").read_text() == PRETTY
    assert (tmp_path / "notes.txt").read_text() == UGLY


def test_cli_reads_stdin_for_dash(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO(UGLY))
    assert run_cli("-") == 0
    assert capsys.readouterr().out == PRETTY


def test_cli_help_describes_the_options(capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli("--help")
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--check" in out and "--diff" in out and "exit status" in out
