"""Regression tests for the bugs listed in issue 16 ("What was seen"), one or more each."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dsx.compiler.analysis import analyze_source
from dsx.grammar.parser import describe_expected


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
    assert describe_expected(["LESSTHAN", "__ANON_0"]) == "`<` or `==`"


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
