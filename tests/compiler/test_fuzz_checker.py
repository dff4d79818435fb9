"""Fuzzing the checker (hypothesis): arbitrary text, arbitrary bytes and random mixes of .dsx
tokens never make the compiler API or `dsx check` raise a traceback; what it accepts also
generates Python that compiles."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsx.cli import main
from dsx.compiler.analysis import analyze_path, analyze_source
from dsx.compiler.codegen import generate
from dsx.errors import DsxError

EXAMPLE = (Path(__file__).resolve().parents[2] / "examples" / "rag.dsx").read_text()

TOKENS = [
    "signature", "module", "program", "type", "enum", "use", "python", "test", "for",
    "optimize", "data", "metric", "forward", "return", "if", "else", "while", "max", "in",
    "not", "and", "or", "is", "none", "true", "false", "break", "continue", "assert",
    "Predict", "ChainOfThought", "ReAct", "S", "M", "x", "q", "a", "answer", "str", "int",
    "list[str]", "{", "}", "(", ")", "[", "]", ",", ":", "=", "==", "+", "-", "*", "/", "%",
    "//", "->", ".", "///", '"', '"x"', '"{a b}"', '"{x:.2f}"', '"""', "\n", " ", "\t",
    "1", "2.5", "é", "\u2028", "\x00",
]  # fmt: skip

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _analyze_and_generate(text: str) -> None:
    analysis = analyze_source(text, "/fuzz/input.dsx")
    assert all(d.code and d.message for d in analysis.diagnostics)
    if not analysis.errors:
        for prog in analysis.unit.programs:
            compile(generate(analysis.unit, prog.name), f"{prog.name}.py", "exec")


@SETTINGS
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text):
    _analyze_and_generate(text)


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join))
def test_token_soup_never_raises(text):
    _analyze_and_generate(text)


@SETTINGS
@given(st.integers(0, len(EXAMPLE)), st.integers(0, 40), st.text(max_size=12))
def test_edits_of_an_example_never_raise(at, cut, insert):
    _analyze_and_generate(EXAMPLE[:at] + insert + EXAMPLE[at + cut :])


@settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "replace")))
def test_dsx_check_on_arbitrary_bytes_answers_without_a_traceback(data):
    with tempfile.TemporaryDirectory(prefix="dsx-fuzz-") as tmp:
        path = Path(tmp) / "input.dsx"
        path.write_bytes(data)
        try:  # the compiler API on the file: diagnostics, or a typed error naming the file
            analyze_path(path)
        except DsxError as exc:
            assert str(path) in str(exc) and "UTF-8" in str(exc)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["check", str(path)])
    assert status in (0, 1, 2), (status, err.getvalue())
    assert "Traceback" not in out.getvalue() + err.getvalue()
