"""Parity: every example and every golden case that passes `dsx check` also builds and runs
the same way in both paths — the interpreter (what `dsx run` uses) and the module `dsx build`
writes — with the same scripted LM: the same outputs (or the same error) and the same
prompts, through the sync face and through `acall`."""

from __future__ import annotations

from pathlib import Path

import pytest
from _codegen_kit import isolated_imports, program_inputs, run_both

from dsx.compiler.analysis import analyze_path

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "examples").glob("*.dsx")) + sorted(
    (ROOT / "tests" / "cases" / "check").glob("*.dsx")
)


def _checked() -> list[tuple[Path, str]]:
    cases = []
    for path in FILES:
        analysis = analyze_path(path)
        if not analysis.errors:
            cases += [(path, prog.name) for prog in analysis.unit.programs]
    return cases


CASES = _checked()


def test_the_cases_cover_every_example():
    examples = {p for p, _ in CASES if p.parent.name == "examples"}
    assert examples == set((ROOT / "examples").glob("*.dsx"))
    assert len(CASES) >= 10


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("path", "program"), CASES, ids=[f"{p.parent.name}/{p.name}:{n}" for p, n in CASES]
)
def test_interpreter_and_built_module_agree(path, program, mode, tmp_path):
    with isolated_imports():
        unit = analyze_path(path).unit
        inputs = program_inputs(unit, program)
        interpreted, built = run_both(unit, program, tmp_path / "build", inputs, mode=mode)
    assert built.error == interpreted.error
    assert built.output == interpreted.output
    assert built.prompts == interpreted.prompts
    assert interpreted.prompts, "the program made no LM call: the comparison shows nothing"
