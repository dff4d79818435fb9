"""`use python` modules are found the same way by `dsx run` (the interpreter) and by the
module `dsx build` writes (issue 16): next to the .dsx file, then installed, with sys.path
left alone, so what a helper itself imports follows Python's ordinary rules in both."""

from __future__ import annotations

import sys
import uuid

import pytest
from _codegen_kit import isolated_imports, load_module

import dsx
from dsx.compiler.analysis import analyze_path
from dsx.compiler.codegen import generate
from dsx.testing import FunctionLM

PROGRAM = """use python "{module}" as tools

signature S {{
    in  x: str
    out y: str
}}

module M {{
    p = Predict(S)

    forward(x: str) {{
        return p(x = tools.shout(x))
    }}
}}

program m = M()
"""


def _project(tmp_path, helper: str, *, package: bool):
    """A project whose helper imports a sibling module: ``{name}.py`` and ``{name}_util.py``
    next to the .dsx file, or both inside a package ``{name}``."""
    name = f"h16b_{uuid.uuid4().hex[:8]}"
    util = "def loud(s):\n    return s.upper() + '!'\n"
    if package:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
        (tmp_path / name / "util.py").write_text(util)
        (tmp_path / name / "tools.py").write_text(helper.format(util="util"))
        module = f"{name}.tools"
    else:
        (tmp_path / f"{name}_util.py").write_text(util)
        (tmp_path / f"{name}.py").write_text(helper.format(util=f"{name}_util"))
        module = name
    source = tmp_path / "prog.dsx"
    source.write_text(PROGRAM.format(module=module))
    return name, source


def _run(program) -> str:
    lm = FunctionLM(lambda messages: {"y": "ok"})
    with dsx.context(lm=lm):
        program(x="hi")
    return lm.history[-1]["messages"][-1]["content"]


def _forget(name: str) -> None:
    for key in [k for k in sys.modules if k == name or k.startswith(name)]:
        del sys.modules[key]


def test_a_helper_in_a_package_imports_its_sibling_relatively_in_both(tmp_path):
    helper = "from . import {util}\n\ndef shout(s):\n    return {util}.loud(s)\n"
    with isolated_imports():
        path = list(sys.path)
        name, source = _project(tmp_path, helper, package=True)
        try:
            interpreted, built = _both_fresh(source, name)
        finally:
            _forget(name)
        assert sys.path == path  # neither path added the project's folder
    assert interpreted == built
    assert "HI!" in interpreted


def test_a_flat_helper_importing_a_sibling_fails_the_same_in_both(tmp_path):
    # `dsx run` used to put the .dsx folder on sys.path, so `import sibling` in a helper
    # worked there and failed in the built module; both now follow the built module's rule.
    helper = "import {util}\n\ndef shout(s):\n    return {util}.loud(s)\n"
    with isolated_imports():
        path = list(sys.path)
        name, source = _project(tmp_path, helper, package=False)
        try:
            interpreted, built = _both_fresh(source, name)
        finally:
            _forget(name)
        assert sys.path == path
    assert interpreted == built
    assert interpreted.startswith("error: cannot import")
    assert f"No module named '{name}_util'" in interpreted
    assert str(tmp_path) in interpreted  # where it was looked for


def _both_fresh(source, name: str) -> list[str]:
    outcomes = []
    analysis = analyze_path(source)
    assert analysis.errors == [], analysis.errors
    out = source.parent / "build"
    out.mkdir()
    (out / "prog.py").write_text(generate(analysis.unit, "m", python_root=".."))
    for make in (
        lambda: dsx.instantiate(analysis.unit).program("m"),
        lambda: load_module(out / "prog.py").program(),
    ):
        try:
            outcomes.append(_run(make()))
        except dsx.DsxError as exc:
            outcomes.append(f"error: {exc}")
        _forget(name)  # each path imports the helper afresh
    return outcomes


@pytest.mark.parametrize("package", [False, True])
def test_the_checker_accepts_what_both_paths_import(tmp_path, package):
    helper = "def shout(s):\n    return s.upper()\n"
    name, source = _project(tmp_path, helper, package=package)
    assert analyze_path(source).errors == []
    _forget(name)
