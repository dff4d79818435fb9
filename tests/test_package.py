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


def test_documented_metrics_and_majority_are_exported_lazily():
    names = [
        "exact_match",
        "f1",
        "passage_match",
        "answer_in_context",
        "answer_exact_match",
        "answer_passage_match",
        "majority",
    ]
    modules = _imported_after("import dsx")
    assert "dsx.runtime.metrics" not in modules and "dsx.teleprompt" not in modules
    for name in names:
        assert name in dsx.__all__ and name in dir(dsx), name
    from dsx.runtime import metrics
    from dsx.teleprompt import ensemble

    assert dsx.exact_match is metrics.exact_match and dsx.majority is ensemble.majority
    ex = dsx.Example(question="q", answer="Paris")
    assert dsx.exact_match()(ex, dsx.Prediction(answer="paris")) == 1.0
    assert dsx.answer_exact_match(ex, dsx.Prediction(answer="The Paris")) == 1.0
    assert dsx.majority([dsx.Prediction(answer=a) for a in "aba"]).answer == "a"
