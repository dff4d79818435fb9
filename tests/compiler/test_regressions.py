"""Regression tests for the bugs listed in issue 16 ("What was seen"), one or more each."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

import dsx
from dsx.compiler.analysis import analyze_source
from dsx.compiler.codegen import generate
from dsx.compiler.formatter import format_source
from dsx.grammar.parser import describe_expected, parse, split_blocks
from dsx.lsp.context import block_start
from dsx.testing import FunctionLM


def _forward(body: str) -> str:
    return (
        "signature S {\n    in x: str\n    out y: str\n}\n"
        "module M {\n    p = Predict(S)\n    forward(x: str) {\n"
        f"        {body}\n"
        "    }\n}\nprogram m = M()\n"
    )


# -- crashes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interp", "bad", "hint"),
    [
        ("{x b}", "b", "exactly one expression"),
        ("{x:.2f}", ":", "format specs"),
        ("{x,}", ",", "exactly one expression"),
        ("{x!r}", "!", "format specs"),
    ],
)
def test_bad_interpolations_are_located_diagnostics_not_crashes(interp, bad, hint):
    text = _forward(f'return p(x = "{interp}")')
    analysis = analyze_source(text, "t.dsx")
    assert [d.code for d in analysis.diagnostics] == ["DSX002"]
    diag = analysis.diagnostics[0]
    assert text[diag.span.start : diag.span.end] == bad
    assert hint in diag.message
    assert "the end of the expression" in diag.message or bad == "!"


def test_describe_expected_never_fails_and_never_names_grammar_tokens():
    assert describe_expected([]) == "the end of the declaration"
    assert describe_expected([], end="the end of the expression") == "the end of the expression"
    two = describe_expected(["LESSTHAN", "__ANON_0"])  # an anonymous terminal: an operator
    assert two.startswith("`<` or `") and "anon" not in two.lower(), two
    assert describe_expected(["INLINE_IF", "RSQB"]) == "`if` or `]`"


def test_dsx_check_into_a_closed_pipe_is_quiet(tmp_path):
    # `dsx check | head`: the reader goes away; no BrokenPipeError traceback.
    path = tmp_path / "many.dsx"
    path.write_text("".join(f'signature S{i} = "q -> a"\n' for i in range(3000)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "dsx.cli", "check", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


# -- the block splitter knows strings -----------------------------------------------------

KEYWORD_LINES = '''signature S {
    instructions """
Answer briefly.
use the provided context only.
type the answer in lowercase.
data from the context wins, test it.
"""
    in q: str // a comment with """ in it
    out a: str
}
program p = Predict(S)
'''


def test_keywords_at_column_0_inside_a_triple_quoted_string_start_no_block():
    pf = parse(KEYWORD_LINES, "t.dsx")
    assert pf.diagnostics == []
    assert [type(d).__name__ for d in pf.decls] == ["SignatureDecl", "ProgramDecl"]
    assert "type the answer in lowercase." in pf.decls[0].instructions.value
    assert [KEYWORD_LINES[s:e].split()[0] for s, e in split_blocks(KEYWORD_LINES)] == [
        "signature",
        "program",
    ]
    assert analyze_source(KEYWORD_LINES, "t.dsx").diagnostics == []


def test_the_formatter_and_the_editor_agree_with_the_splitter():
    formatted = format_source(KEYWORD_LINES, "t.dsx")
    assert "type the answer in lowercase." in formatted
    assert format_source(formatted, "t.dsx") == formatted
    assert parse(formatted, "t.dsx").diagnostics == []
    # Completion's scanner finds the enclosing declaration, not a `type` block.
    at = KEYWORD_LINES.index("answer in lowercase")
    assert block_start(KEYWORD_LINES, at) == 0
    assert block_start(KEYWORD_LINES, KEYWORD_LINES.index("program")) == KEYWORD_LINES.index(
        "program"
    )


def test_an_unterminated_triple_quote_does_not_swallow_the_file():
    text = 'signature S {\n    instructions """\n    in q: str\n}\nprogram p = Predict(S)\n'
    assert len(split_blocks(text)) == 2


# -- `//` is a comment, never a silent floor division -----------------------------------


def test_floor_division_lookalike_is_a_located_error():
    text = _forward("n = len(x) // 2\n        return p(x = str(n))")
    analysis = analyze_source(text, "t.dsx")
    assert [d.code for d in analysis.diagnostics] == ["DSX001"]
    diag = analysis.diagnostics[0]
    assert text[diag.span.start : diag.span.end] == "// 2"
    assert "floor division" in diag.message and "int(a / b)" in diag.message


@pytest.mark.parametrize("divisor", ["k", "n"])
def test_floor_division_by_a_name_is_a_located_error(divisor):
    # `n // k` with a name after `//`: the name is one the block uses, so not a comment.
    text = _forward(f"k = 2\n        n = len(x) + k // {divisor}\n        return p(x = str(n))")
    analysis = analyze_source(text, "t.dsx")
    assert [d.code for d in analysis.diagnostics] == ["DSX001"]
    diag = analysis.diagnostics[0]
    assert text[diag.span.start : diag.span.end] == f"// {divisor}"
    assert "floor division" in diag.message


@pytest.mark.parametrize(
    "comment", ["// the short answer", "// retry", "// (optional)", "// true", "// TODO: x"]
)
def test_ordinary_trailing_comments_stay_comments(comment):
    text = _forward(f"return p(x = x)  {comment}")
    assert analyze_source(text, "t.dsx").diagnostics == []


# -- codegen agrees with the interpreter on comparisons -----------------------------------

COMPARISONS = _forward(
    'a = (x == "a") == false\n'
    '        b = ("a" in x) in [true]\n'
    '        c = ("a" not in x) not in [false]\n'
    "        d = 1 < 2 == true\n"
    '        return p(x = "{a} {b} {c} {d}")'
)


def _prompts(program, inputs):
    lm = FunctionLM(lambda m: {"y": "ok"})
    with dsx.context(lm=lm):
        for x in inputs:
            program(x=x)
    return [h["messages"][-1]["content"] for h in lm.history]


def test_generated_comparisons_do_not_chain():
    analysis = analyze_source(COMPARISONS, "/tmp/cmp.dsx")
    assert analysis.diagnostics == []
    code = generate(analysis.unit, "m")
    assert '(x == "a") == False' in code or "(x == 'a') == False" in code
    g: dict = {"__file__": "/tmp/cmp_gen.py", "__name__": "cmp"}
    exec(compile(code, "/tmp/cmp_gen.py", "exec"), g)
    inputs = ["a", "b"]
    interpreted = _prompts(dsx.instantiate(analysis.unit).program("m"), inputs)
    assert interpreted == _prompts(g["program"](), inputs)
    assert "False True False True" in interpreted[0]  # x = "a": (True == False) is False
    assert "True False True True" in interpreted[1]


# -- enum value descriptions reach the prompt ---------------------------------------------

ENUMS = """enum Kind { bug "something is broken", feature "a new capability", question }
type Ticket { kind: Kind, title: str }
signature Triage {
    in text: str
    out kind: Kind "the kind of ticket"
    out tickets: list[Ticket]
}
program p = Predict(Triage)
"""


def _import_generated(code: str, path, name: str):
    path.write_text(code)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # signatures resolve their types in their module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def test_enum_value_descriptions_reach_the_prompt_in_run_and_build(tmp_path):
    analysis = analyze_source(ENUMS, str(tmp_path / "enums.dsx"))
    assert analysis.diagnostics == []
    built = _import_generated(generate(analysis.unit, "p"), tmp_path / "enums_gen.py", "enums_gen")
    prompts = []
    for program in (dsx.instantiate(analysis.unit).program("p"), built.program()):
        lm = FunctionLM(lambda m: {"kind": "bug", "tickets": []})
        with dsx.context(lm=lm):
            program(text="it crashes")
        prompts.append(lm.history[-1]["messages"][0]["content"])
    assert prompts[0] == prompts[1]
    values = "Kind values: bug (something is broken), feature (a new capability), question."
    assert f"the kind of ticket. {values}" in prompts[0]
    assert values in prompts[0].split("<<< tickets >>>")[1]  # the record field's schema too


# -- messages -----------------------------------------------------------------------------


def test_syntax_errors_name_operators_not_grammar_tokens():
    text = _forward("if x < { return p(x = x) }\n        return p(x = x)")
    diags = [d for d in analyze_source(text, "t.dsx").diagnostics if d.code == "DSX001"]
    assert diags
    assert "lessthan" not in diags[0].message.lower() and "__anon" not in diags[0].message.lower()


def test_articles_in_messages():
    text = "enum Kind { a, b }\nprogram p = Predict(Kind)\n"
    messages = [d.message for d in analyze_source(text, "t.dsx").diagnostics]
    assert "`Kind` is an enum, not a signature" in messages


def test_rename_messages_use_the_right_article():
    from dsx.lsp.rename import check_name

    text = 'enum Kind { a, b }\nsignature S = "q -> a"\nprogram p = Predict(S)\n'
    analysis = analyze_source(text, "t.dsx")
    why = check_name(analysis, analysis.symbols["S"], "Kind")
    assert why == "`Kind` is already declared (an enum)"


@pytest.mark.parametrize("name", ["S", "Summarize"])
def test_a_signature_called_like_a_function_says_so_without_a_bad_fix(name):
    text = _forward(f"r = {name}(x = x)\n        return p(x = x)").replace(
        "program m", 'signature Summarize = "x -> y"\nprogram m'
    )
    diags = [d for d in analyze_source(text, "t.dsx").diagnostics if d.code != "DSX200"]
    assert [d.code for d in diags] == ["DSX106"], [d.message for d in diags]
    diag = diags[0]
    assert f"`{name}` is a signature" in diag.message
    assert f"= Predict({name})" in diag.message
    assert "enumerate" not in diag.message and diag.fix is None
    assert text[diag.span.start : diag.span.end] == name


@pytest.mark.parametrize(
    ("stmt", "advice"),
    [
        ("try { x = x }", "assert"),
        ("raise x", "assert"),
        ('elif x == "a" { }', "else if"),
    ],
)
def test_unsupported_python_statements_are_named(stmt, advice):
    # A syntax error (DSX001), or a statement that parsed with the keyword as a name (DSX100).
    text = _forward(f"{stmt}\n        return p(x = x)")
    diags = [d for d in analyze_source(text, "t.dsx").diagnostics if "not supported" in d.message]
    assert len(diags) == 1 and diags[0].code in ("DSX001", "DSX100"), diags
    kw = stmt.split()[0]
    assert diags[0].message.startswith(f"`{kw}` is not supported in .dsx")
    assert advice in diags[0].message
    assert text[diags[0].span.start : diags[0].span.end] == kw


def test_with_in_an_optimize_block_is_not_mistaken_for_python():
    text = (
        'signature S = "q -> a"\nprogram p = Predict(S)\ndata d = jsonl("d.jsonl")\n'
        "optimize p {\n    with LabeledFewShot(k = 2)\n    train d\n    metric\n}\n"
    )
    diags = [d for d in analyze_source(text, "t.dsx").diagnostics if d.code == "DSX001"]
    assert diags and "not supported" not in diags[0].message


# -- outputs named like Prediction methods -------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["labels", "items", "keys", "values", "get", "copy", "inputs", "completions", "to_dict"],
)
def test_outputs_named_like_prediction_methods_are_refused_with_a_fix(name):
    text = f"signature S {{\n    in text: str\n    out {name}: str\n}}\nprogram p = Predict(S)\n"
    diags = analyze_source(text, "t.dsx").diagnostics
    assert [d.code for d in diags] == ["DSX107"]
    diag = diags[0]
    assert text[diag.span.start : diag.span.end] == name
    assert diag.fix is not None and diag.fix.edits[0].span == diag.span
    fixed = text.replace(f"out {name}", f"out {diag.fix.edits[0].new_text}")
    assert analyze_source(fixed, "t.dsx").diagnostics == []


def test_reserved_outputs_in_shorthand_and_inputs():
    text = 'program p = Predict("items -> keys")\n'
    diags = analyze_source(text, "t.dsx").diagnostics
    assert [d.code for d in diags] == ["DSX107"]
    assert text[diags[0].span.start : diags[0].span.end] == "keys"


# -- recursive records are a located error --------------------------------------------------


def test_recursive_records_are_a_located_error():
    text = (
        "type Node { name: str, children: list[Node] }\n"
        "type A { b: B? }\ntype B { a: list[A] }\n"
        "type Leaf { name: str }\ntype Tree { leaves: list[Leaf] }\n"
        "signature S { in x: str  out n: Node  out a: A  out t: Tree }\nprogram p = Predict(S)\n"
    )
    diags = analyze_source(text, "t.dsx").diagnostics
    assert [d.code for d in diags] == ["DSX108"] * 3
    spans = [(text[d.span.start : d.span.end], d.span.start) for d in diags]
    assert spans == [
        ("Node", text.index("Node]")),
        ("B", text.index("B?")),
        ("A", text.index("A]")),
    ]
    assert "through `B`" in diags[1].message


# -- test blocks are type-checked ---------------------------------------------------------------


def test_given_and_expect_are_type_checked():
    text = (
        "enum Urgency { low, high }\n"
        "signature S {\n    in question: str\n    out urgency: Urgency\n    out score: float\n}\n"
        "program p = Predict(S)\n"
        'test bad for p {\n    given question = 5\n    expect urgency = "urgent"\n}\n'
        'test good for p {\n    given question = "q"\n    expect urgency = "high"\n'
        "    expect score = 1\n}\n"
    )
    diags = analyze_source(text, "t.dsx").diagnostics
    assert [(d.code, text[d.span.start : d.span.end]) for d in diags] == [
        ("DSX113", "5"),
        ("DSX113", '"urgent"'),
    ]
    assert "input `question` of program `p` expects str" in diags[0].message


# -- a syntax error costs one diagnostic, no false errors elsewhere -------------------------


def test_a_broken_declaration_causes_no_false_unknown_or_unused_diagnostics():
    text = (
        'signature S = "x -> y"\n'
        "module M {\n    p = Predict(S)\n    forward(x: str) {\n"
        "        y = p(x = x).y +* 2\n        return p(x = x)\n    }\n}\n"
        "program m = M()\n"
    )
    diags = analyze_source(text, "t.dsx").diagnostics
    assert [d.code for d in diags] == ["DSX001"], [d.message for d in diags]


RECOVERY = """signature Good {
    in  question: str
    out answer: str
}

module M {
    p = Predict(Good)
    forward(question: str) {
        x = p(question = question
        y = p(question = question)
        z = y.answr
        w = x + * 2
        return y
    }
}

program m = M()

test t for m {
    given  question = "q"
    expect answr = "a"
}
"""


def test_a_syntax_error_in_a_forward_body_keeps_the_rest_of_the_module_checked():
    analysis = analyze_source(RECOVERY, "t.dsx")
    source = analysis.source(analysis.root)
    assert source is not None
    found = [(source.position(d.span.start)[0], d.code) for d in analysis.diagnostics]
    # Both bad lines are reported; the statements around them are still checked (the
    # misspelt output, also in the test block), and `x`, assigned on a bad line, is not
    # reported unknown where it is used.
    assert found == [(10, "DSX001"), (11, "DSX112"), (12, "DSX001"), (21, "DSX124")], [
        d.message for d in analysis.diagnostics
    ]
    assert "unexpected `y`" in analysis.diagnostics[0].message
    assert "unexpected `*`" in analysis.diagnostics[2].message
    module = analysis.unit.get("modules", "M")
    assert module is not None and [s.kind for s in module.forward.body] == [
        "assign",
        "assign",
        "return",
    ]


def test_an_unclosed_call_before_a_return_keeps_the_return():
    # The error shows on the `return` line (`return` reads as a name inside the call); the
    # line to leave out is the one before it, or the module would "never return".
    text = RECOVERY.replace("w = x + * 2", "w = y.answer(")
    analysis = analyze_source(text, "t.dsx")
    assert [d.code for d in analysis.diagnostics] == ["DSX001", "DSX112", "DSX001", "DSX124"], [
        d.message for d in analysis.diagnostics
    ]
    module = analysis.unit.get("modules", "M")
    assert [s.kind for s in module.forward.body][-1] == "return"


def test_an_unrecoverable_block_is_still_one_error_and_no_false_ones():
    text = RECOVERY.replace("w = x + * 2", "if question == {\n            w = 1\n        }")
    diags = analyze_source(text, "t.dsx").diagnostics
    assert [d.code for d in diags] == ["DSX001"], [d.message for d in diags]


def test_recovery_leaves_signatures_whole():
    # A field left out would make every use of it a false error: no recovery there.
    text = RECOVERY.replace("in  question: str", "in  question str")
    diags = analyze_source(text, "t.dsx").diagnostics
    # The signature's error, then the module's two (the module is recovered; what it reads
    # from the broken signature is unknown, not wrong).
    assert [d.code for d in diags] == ["DSX001"] * 3, [d.message for d in diags]
    assert diags[0].message == "unexpected `str`: expected `:`"
    assert analyze_source(text, "t.dsx").unit.get("signatures", "Good") is None


# -- attributes of plain values are checked ---------------------------------------------------


def test_attribute_access_on_str_and_dict_values_is_checked():
    text = _forward(
        'a = x.upper()\n        b = x.answer\n        c = d.key\n        e = d.get("k")\n'
        "        s = x.score\n        return p(x = x)"
    ).replace("forward(x: str)", "forward(x: str, d: dict[str, str])")
    diags = analyze_source(text, "t.dsx").diagnostics
    assert [(d.code, text[d.span.start : d.span.end]) for d in diags] == [
        ("DSX100", "answer"),
        ("DSX100", "key"),
    ], [d.message for d in diags]
    assert "a `str` value has no attribute `answer`" in diags[0].message
    assert 'd["key"]' in diags[1].message
    assert all(d.fix is None for d in diags)  # no misleading did-you-mean (`islower`)
