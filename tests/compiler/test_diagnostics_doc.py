from __future__ import annotations

import re
from pathlib import Path

from dsx.diagnostics import REGISTRY

DOC = Path(__file__).resolve().parents[2] / "docs" / "diagnostics.md"


def test_every_registered_code_is_documented_and_nothing_else():
    headings = dict(re.findall(r"^## (DSX\d{3}) ([a-z-]+)$", DOC.read_text(), re.M))
    assert set(headings) == set(REGISTRY)
    for code, name in headings.items():
        assert REGISTRY[code].name == name, code
