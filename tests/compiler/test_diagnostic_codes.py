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
