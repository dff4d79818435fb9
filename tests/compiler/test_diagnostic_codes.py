"""Diagnostic codes are named constants (``DiagnosticCode``), one per registry entry."""

from __future__ import annotations

import pytest

from dsx.diagnostics import REGISTRY, DiagnosticCode, Span, make


def test_every_registry_code_has_a_constant_named_after_it() -> None:
    assert {c.value for c in DiagnosticCode} == set(REGISTRY)
    for constant in DiagnosticCode:
        assert REGISTRY[constant].name == constant.name.lower().replace("_", "-")


def test_a_diagnostic_made_from_a_constant_holds_the_plain_code() -> None:
    diag = make(DiagnosticCode.UNKNOWN_NAME, "unknown name `x`", Span("/codes/x.dsx", 0, 1))
    assert type(diag.code) is str and diag.code == "DSX100"
    assert diag.severity == REGISTRY["DSX100"].severity


def test_a_misspelt_constant_fails_where_it_is_written() -> None:
    with pytest.raises(AttributeError):
        DiagnosticCode.UNKNOWN_NAMES  # noqa: B018


def test_codes_are_named_constants_outside_the_registry():
    # Every code the checker, parser, formatter, CLI or language server gives or tests
    # for is a `DiagnosticCode` constant: a literal "DSX123" elsewhere could drift.
    import re
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "src" / "dsx"
    literal = re.compile(r"[\"']DSX\d{3}[\"']")
    found = [
        f"{path.relative_to(src)}:{i}"
        for path in sorted(src.rglob("*.py"))
        if path.name != "diagnostics.py"
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if literal.search(line)
    ]
    assert found == []
