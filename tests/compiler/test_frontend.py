"""Front-end behaviour beyond the golden cases: examples, robustness, spans, caching."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsx.compiler.analysis import analyze_path, analyze_source
from dsx.grammar import ast
from dsx.grammar.parser import BlockCache, parse, split_blocks

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.dsx"))
CASES = sorted((ROOT / "tests" / "cases").rglob("*.dsx"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_check_clean(path):
    analysis = analyze_path(path)
    assert analysis.diagnostics == [], [d.message for d in analysis.diagnostics]


def test_examples_cover_the_required_programs():
    names = {p.stem for p in EXAMPLES}
    assert {"qa", "rag", "multihop", "react_agent", "classifier"} <= names
    assert any("optimize " in p.read_text() for p in EXAMPLES)


def test_one_error_per_bad_block_and_later_blocks_still_parse():
    text = (
        'signature A {\n  in x str\n  in y ]]]\n}\nsignature B = "a -> b"\nprogram p = Predict(B)\n'
    )
    pf = parse(text, "t.dsx")
    assert [d.code for d in pf.diagnostics] == ["DSX001"]
    assert [type(d).__name__ for d in pf.decls] == ["SignatureDecl", "ProgramDecl"]
    assert "expected `:`" in pf.diagnostics[0].message


def test_spans_are_exact_and_soft_keywords_work():
    text = "signature S {\n    in  type: str\n    out data: int\n}\n"
    sig = parse(text, "t.dsx").decls[0]
    assert [f.name.name for f in sig.fields] == ["type", "data"]
    f = sig.fields[1]
    assert text[f.name.span.start : f.name.span.end] == "data"
    assert text[sig.span.start : sig.span.end] == text.rstrip("\n")


def test_doc_comments_become_instructions_and_field_docs():
    text = "/// Be terse.\n/// Very.\nsignature S {\n    /// the thing asked\n    in q: str\n    out a: str\n}\nprogram p = Predict(S)\n"
    unit = analyze_source(text, "t.dsx").unit
    sig = unit.signatures[0]
    assert sig.instructions == "Be terse.\nVery."
    assert sig.fields[0].desc == "the thing asked"


def test_string_interpolation_lowers_to_fstring_with_checked_names():
    text = (
        'signature S = "q -> a"\nmodule M {\n    p = Predict(S)\n    forward(q: str) {\n'
        '        x = "asked {q} and {qq} {{literal}}"\n        return p(q = x)\n    }\n}\nprogram m = M()\n'
    )
    analysis = analyze_source(text, "t.dsx")
    assert [d.code for d in analysis.diagnostics] == ["DSX100"]
    diag = analysis.diagnostics[0]
    assert text[diag.span.start : diag.span.end] == "qq"
    fstring = analysis.unit.modules[0].forward.body[0].value
    assert (
        fstring.kind == "fstring"
        and fstring.parts[0] == "asked "
        and fstring.parts[-1] == " {literal}"
    )


def test_block_cache_reuses_unchanged_blocks_after_an_edit_above():
    text = 'signature A = "a -> b"\n\nsignature B = "c -> d"\nprogram p = Predict(B)\n'
    cache = BlockCache()
    first = parse(text, "t.dsx", cache=cache)
    edited = "// a new comment line\n" + text.replace('"a -> b"', '"a -> bb"')
    second = parse(edited, "t.dsx", cache=cache)
    assert second.blocks[-1] is first.blocks[-1]  # reused
    b = second.decls[1]
    assert edited[b.name.span.start : b.name.span.end] == "B"  # spans follow the move


def test_split_blocks_keeps_comments_with_the_next_declaration():
    text = '// header\n\n// about A\nsignature A = "a -> b"\n// about B\nsignature B = "c -> d"\n'
    blocks = [text[s:e] for s, e in split_blocks(text)]
    assert blocks[0] == "// header\n\n"
    assert blocks[1].startswith("// about A\nsignature A")
    assert blocks[2].startswith("// about B\nsignature B")


def test_dsx_check_cli_exit_codes_and_formats(tmp_path):
    good = tmp_path / "good.dsx"
    good.write_text('signature S = "q -> a"\nprogram p = Predict(S)\n')
    bad = tmp_path / "bad.dsx"
    bad.write_text('signature S = "q -> a"\nprogram p = Predict(T)\n')
    exe = [sys.executable, "-m", "dsx.cli"]
    ok = subprocess.run([*exe, "check", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0 and "no problems" in ok.stdout
    res = subprocess.run(
        [*exe, "check", str(bad), "--color", "never"], capture_output=True, text=True
    )
    assert res.returncode == 1
    assert "error[DSX104]" in res.stdout and "bad.dsx:2:21" in res.stdout and "^" in res.stdout
    js = subprocess.run(
        [*exe, "check", str(bad), "--format", "json"], capture_output=True, text=True
    )
    import json

    data = json.loads(js.stdout)
    by_code = {d["code"]: d for d in data}
    assert by_code["DSX104"]["span"]["line"] == 2 and by_code["DSX200"]["severity"] == "warning"
    missing = subprocess.run(
        [*exe, "check", str(tmp_path / "nope.dsx")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "no such file" in missing.stderr


_SNIPPETS = [p.read_text() for p in [*EXAMPLES, *CASES]]
_TOKENS = [
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "=",
    ",",
    ":",
    "->",
    '"',
    '"""',
    "//",
    "signature",
    "module",
    "forward",
    "in",
    "out",
    "return",
    "if",
    "else",
    "for",
    "assert",
    ".",
    "?",
    "|",
    "\n",
    " ",
    "x",
    "1",
]


@st.composite
def mutated_sources(draw):
    text = draw(st.sampled_from(_SNIPPETS))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "swap"]))
        if action == "insert":
            text = text[:pos] + draw(st.sampled_from(_TOKENS)) + text[pos:]
        elif action == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 8)) :]
        else:
            text = text[:pos] + draw(st.text(max_size=5)) + text[pos + 1 :]
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_sources())
def test_mutated_sources_never_crash_the_front_end(text):
    analysis = analyze_source(text, "/tmp/fuzz/case.dsx")
    for d in analysis.diagnostics:
        assert 0 <= d.span.start <= d.span.end <= len(text) or d.span.file != "/tmp/fuzz/case.dsx"
        assert d.message


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_random_text_never_crashes_the_front_end(text):
    analysis = analyze_source(text, "/tmp/fuzz/random.dsx")
    assert all(isinstance(d.message, str) for d in analysis.diagnostics)
    assert all(isinstance(b, ast.Block) for b in analysis.files[analysis.root].blocks)


def _summary(analysis):
    return (
        sorted((d.code, d.span.start, d.span.end, d.message) for d in analysis.diagnostics),
        analysis.unit.to_json(),
    )


_EDITS = [
    ("return pred", "return pred.answr"),
    (
        "query   = rewrite(question = question).search_query",
        "query = rewrite(questio = question).search_query",
    ),
    ("context = retrieve(query).passages", "context = retrieve(query).passage"),
    (
        "pred = answer(context = context, question = question)",
        "pred = answer(context = context, question = question",
    ),
    ('assert len(passage) > 0, "empty passage"', 'assert len(pasage) > 0, "empty {passage}"'),
    ('expect answer = "Paris"', 'expect answr = "Paris"'),
    ("for passage in context {", "for passage in contxt {"),
    ("cite     = Predict(Cite, temperature = 0.2)", "cite     = Predict(Cite, temperature = 0.3)"),
]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(_EDITS), min_size=1, max_size=4), st.booleans())
def test_incremental_recheck_equals_a_full_check(edits, revert):
    text = (ROOT / "tests" / "cases" / "check" / "clean.dsx").read_text()
    path = str(ROOT / "tests" / "cases" / "check" / "clean.dsx")
    caches: dict = {}
    prev = analyze_source(text, path, caches=caches)
    current = text
    for old, new in edits:
        if old not in current:
            continue
        current = current.replace(old, new, 1)
        prev = analyze_source(current, path, caches=caches, previous=prev)
        full = analyze_source(current, path)
        if any(d.code == "DSX001" for d in full.diagnostics):
            # While a block does not parse, an incremental check keeps its last meaning
            # (no cascade of unknown names); a fresh check cannot. Syntax errors agree.
            syntax = [d for d in full.diagnostics if d.code == "DSX001"]
            assert [d for d in prev.diagnostics if d.code == "DSX001"] == syntax
            prev = analyze_source(current, path, caches=caches)  # start over from a full check
            continue
        assert _summary(prev) == _summary(full), (old, new, prev.incremental)
    if revert:
        prev = analyze_source(text, path, caches=caches, previous=prev)
        assert _summary(prev) == _summary(analyze_source(text, path))


def test_an_edit_inside_a_forward_body_is_rechecked_incrementally():
    path = str(ROOT / "tests" / "cases" / "check" / "clean.dsx")
    text = Path(path).read_text()
    caches: dict = {}
    prev = analyze_source(text, path, caches=caches)
    edited = text.replace("cite(answer = pred.answer)", "cite(answer = pred.answr)")
    again = analyze_source(edited, path, caches=caches, previous=prev)
    assert again.incremental
    assert [d.code for d in again.diagnostics] == ["DSX112"]


_FMT_INPUTS = sorted(
    p
    for p in (ROOT / "tests" / "cases" / "fmt").glob("*.dsx")
    if not p.name.endswith(".expected.dsx")
)


@pytest.mark.parametrize(
    "path",
    [*EXAMPLES, *sorted((ROOT / "tests" / "cases" / "check").glob("*.dsx")), *_FMT_INPUTS],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_formatting_never_changes_the_ir(path, tmp_path):
    from dsx.compiler.formatter import format_source

    text = path.read_text()
    formatted = format_source(text, str(path))
    assert format_source(formatted, str(path)) == formatted
    copy = tmp_path / path.name
    for sibling in path.parent.glob("*"):
        if (
            sibling.is_file()
            and sibling.suffix in (".dsx", ".py", ".jsonl")
            and sibling.name != path.name
        ):
            (tmp_path / sibling.name).write_text(sibling.read_text())
    if (path.parent / "data").is_dir():
        (tmp_path / "data").mkdir()
        for f in (path.parent / "data").iterdir():
            (tmp_path / "data" / f.name).write_text(f.read_text())
    copy.write_text(text)
    before = json.loads(analyze_path(copy).unit.to_json())
    copy.write_text(formatted)
    after = json.loads(analyze_path(copy).unit.to_json())

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "loc"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    assert strip(after) == strip(before)
