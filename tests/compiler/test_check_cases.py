"""Golden checker tests: every `tests/cases/check/*.dsx` file states its expected
diagnostics inline, as `// ! CODE message words` at the end of the line where each
diagnostic starts. Each root case also has a golden IR dump (`NAME.ir.json`); run with
DSX_REGEN_GOLDEN=1 to rewrite those."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from dsx.compiler.analysis import analyze_path
from dsx.diagnostics import REGISTRY

CASES = Path(__file__).resolve().parents[1] / "cases" / "check"
ROOTS = sorted(p for p in CASES.glob("*.dsx") if not p.stem.endswith("_lib"))
MARK = re.compile(r"!\s*(DSX\d{3})\s*([^!]*)")
REGEN = os.environ.get("DSX_REGEN_GOLDEN") == "1"


def expected_marks(path: Path) -> list[tuple[str, int, str, str]]:
    marks = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        comment = line.partition("// !")[2]
        for m in MARK.finditer("!" + comment if comment else ""):
            marks.append((str(path.resolve()), number, m.group(1), m.group(2).strip()))
    return marks


@pytest.mark.parametrize("case", ROOTS, ids=lambda p: p.stem)
def test_case_diagnostics_match_inline_expectations(case):
    analysis = analyze_path(case)
    expected = [m for f in analysis.files for m in expected_marks(Path(f))]
    actual = []
    for d in analysis.diagnostics:
        line, _ = analysis.source(d.span.file).position(d.span.start)
        actual.append((d.span.file, line, d.code, d.message))
    unmatched = list(actual)
    missing = []
    for file, line, code, words in expected:
        hit = next((a for a in unmatched if a[:3] == (file, line, code) and words in a[3]), None)
        if hit is None:
            missing.append(f"{Path(file).name}:{line} {code} {words!r}")
        else:
            unmatched.remove(hit)
    extra = [f"{Path(f).name}:{ln} {c} {msg}" for f, ln, c, msg in unmatched]
    assert not missing and not extra, f"missing: {missing}\nunexpected: {extra}"


@pytest.mark.parametrize("case", ROOTS, ids=lambda p: p.stem)
def test_case_ir_matches_golden_dump(case):
    analysis = analyze_path(case)
    text = analysis.unit.to_json().replace(str(CASES.resolve()), "<cases>")
    golden = case.with_suffix(".ir.json")
    if REGEN:
        golden.write_text(text + "\n")
    # a missing golden fails: writing it here would make the test pass on whatever came out
    assert golden.exists(), f"no golden {golden.name}; write it with DSX_REGEN_GOLDEN=1"
    assert json.loads(text) == json.loads(golden.read_text()), (
        f"IR changed; regenerate with DSX_REGEN_GOLDEN=1 if intended ({golden.name})"
    )


def test_every_case_code_is_registered_and_clean_case_is_clean():
    for case in ROOTS:
        for _, _, code, _ in expected_marks(case):
            assert code in REGISTRY
    assert analyze_path(CASES / "clean.dsx").diagnostics == []


def test_ir_round_trips_through_json():
    from dsx.ir import Unit

    unit = analyze_path(CASES / "clean.dsx").unit
    assert Unit.from_json(unit.to_json()) == unit
    with pytest.raises(ValueError, match="IR version"):
        Unit.from_json(json.dumps({**json.loads(unit.to_json()), "ir_version": 99}))
