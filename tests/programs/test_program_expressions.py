"""A program declared directly as a module kind sees the file's `use python` aliases, in the
interpreter (`dsx run`) as in the built module (issue 16)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import dsx
from dsx.compiler.build import build

SOURCE = """use python "helpers" as helpers

signature Task {
    in  question: str
    out answer: str
}

program agent = ReAct(Task, tools = [helpers.lookup], max_iters = 2)
"""

HELPERS = '''
def lookup(term: str) -> str:
    """Look a term up."""
    return term.upper()
'''


def test_a_use_python_alias_in_a_program_expression(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "helpers.py").write_text(HELPERS)
    (tmp_path / "agent.dsx").write_text(SOURCE)
    interpreted = dsx.load_program(tmp_path / "agent.dsx")
    assert "lookup" in interpreted.tools
    assert interpreted.tools["lookup"](term="x") == "X"
    build(tmp_path / "agent.dsx", log=lambda line: None)
    monkeypatch.syspath_prepend(str(tmp_path / "build"))
    sys.modules.pop("agent", None)
    built = importlib.import_module("agent").program()
    assert sorted(built.tools) == sorted(interpreted.tools)
