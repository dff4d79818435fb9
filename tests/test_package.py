"""Package-level guarantees: lazy imports, layering, public API."""

from __future__ import annotations

import ast
import json
import pathlib
import subprocess
import sys

import dsx

SRC = pathlib.Path(dsx.__file__).parent
HEAVY = ["litellm", "optuna", "wasmtime", "docker", "pygls"]


def _imported_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_dsx_imports_no_heavy_dependency():
    modules = _imported_after("import dsx")
    loaded = [m for m in HEAVY if m in modules]
    assert loaded == [], f"import dsx pulled in {loaded}"


def test_running_a_predictor_still_imports_no_heavy_dependency():
    code = (
        "import dsx\nfrom dsx.testing import DummyLM\n"
        "dsx.Predict('q -> a', lm=DummyLM([{'a': '1'}]))(q='x')"
    )
    modules = _imported_after(code)
    assert [m for m in HEAVY if m in modules] == []


def test_runtime_never_imports_the_toolchain():
    offenders = []
    for path in (SRC / "runtime").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}"
                for n in names
                if n.startswith(("dsx.grammar", "dsx.compiler", "dsx.lsp"))
            ]
    assert offenders == []


def test_public_api_is_explicit_and_resolvable():
    for name in dsx.__all__:
        assert getattr(dsx, name) is not None, name
    assert dsx.Image.__name__ == "Image"
    assert "ChatAdapter" in dir(dsx)
