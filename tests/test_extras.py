"""The optional dependencies (issue 17): each missing extra names the ``pip install`` to run."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import dsx
from dsx._extras import EXTRAS, MissingExtraError, check, require

ROOT = Path(__file__).resolve().parents[1]
MISSING = "dsx_no_such_module_for_the_extras_test"


def test_require_imports_an_installed_module() -> None:
    assert require("lm", "json", feature="x") is sys.modules["json"]


def test_require_names_the_pip_install_of_the_extra() -> None:
    with pytest.raises(MissingExtraError) as info:
        require("lsp", MISSING, feature="The language server (dsx lsp)", package="pygls")
    err = info.value
    assert str(err) == (
        "The language server (dsx lsp) needs the `pygls` package, which is not installed. "
        "Install it with: pip install 'dsx[lsp]'"
    )
    assert (err.extra, err.package, err.install) == ("lsp", "pygls", "pip install 'dsx[lsp]'")
    # catchable as a dsx error, and as the ImportError code already falls back on
    assert isinstance(err, dsx.DsxError)
    assert isinstance(err, ImportError)
    assert err.__cause__ is None and err.__suppress_context__


def test_require_says_which_dependency_of_the_package_is_missing(tmp_path: Path) -> None:
    (tmp_path / "dsx_extras_fake_pkg.py").write_text("import dsx_extras_fake_dependency\n")
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(MissingExtraError, match=r"dsx_extras_fake_dependency.*dsx\[optimize\]"):
            require("optimize", "dsx_extras_fake_pkg", feature="MIPROv2")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("dsx_extras_fake_pkg", None)


def test_check_looks_up_without_importing() -> None:
    check("lm", "json", feature="x")
    with pytest.raises(MissingExtraError, match=r"pip install 'dsx\[sandbox\]'"):
        check("sandbox", MISSING, feature="The sandbox")
    with pytest.raises(MissingExtraError, match=r"`pygls`"):
        check("lsp", f"{MISSING}.sub", feature="x", package="pygls")


def test_the_error_survives_pickling() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(MissingExtraError("lm", "litellm", "LiteLLM")))
    assert err.install == "pip install 'dsx[lm]'" and "LiteLLM needs" in str(err)


def test_every_named_extra_is_declared_and_all_covers_the_former_core() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["optional-dependencies"]
    assert set(EXTRAS) <= set(declared)
    assert declared["all"] == ["dsx[lm,sandbox,lsp,optimize]"]
    core = " ".join(project["dependencies"])
    for heavy in ("litellm", "wasmtime", "docker", "pygls", "optuna", "gepa", "numpy"):
        assert heavy not in core
    # numpy comes with each extra whose features embed (Embedder, KNNFewShot, Embeddings)
    for extra in ("lm", "optimize", "retrieval"):
        assert any(dep.startswith("numpy") for dep in declared[extra]), extra


@pytest.mark.parametrize(
    ("target", "attribute", "extra", "call"),
    [
        ("dsx.runtime._litellm", "require", "lm", lambda m: m.load()),
        ("dsx.teleprompt.mipro", "require", "optimize", lambda m: m._import_optuna()),
        ("dsx.teleprompt.mipro", "check", "optimize", lambda m: m._preload_optuna()),
        (
            "dsx.runtime.embedder",
            "require",
            "lm",
            lambda m: m.Embedder(lambda t: [[1.0]] * len(t))("a"),
        ),
        ("dsx.retrievers._embed", "require", "retrieval", lambda m: m.normalize([[1.0]])),
        ("dsx.teleprompt.knn", "require", "optimize", lambda m: m.KNN(1, [], lambda t: t)),
    ],
)
def test_import_sites_go_through_the_helper(
    monkeypatch: pytest.MonkeyPatch, target: str, attribute: str, extra: str, call: object
) -> None:
    """Each site asks for its own extra (the helper itself is tested above)."""
    import importlib

    module = importlib.import_module(target)
    asked: list[str] = []

    def fake(extra: str, name: str, **kwargs: object) -> None:
        asked.append(extra)
        raise MissingExtraError(extra, name, str(kwargs["feature"]))

    monkeypatch.setattr(module, attribute, fake)
    if target == "dsx.runtime._litellm":
        monkeypatch.setattr(module, "_litellm", None)
    with pytest.raises(MissingExtraError, match=rf"pip install 'dsx\[{extra}\]'"):
        call(module)  # type: ignore[operator]
    assert asked == [extra]


def test_the_sandbox_without_wasmtime_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the compiled-module cache asked for wasmtime's version first and failed
    with importlib's PackageNotFoundError (a traceback) in a core install."""
    from dsx.sandbox import SandboxUnavailable
    from dsx.sandbox import _wasm_runtime as rt

    monkeypatch.setitem(sys.modules, "wasmtime", None)
    with pytest.raises(SandboxUnavailable, match=r"pip install 'dsx\[sandbox\]'"):
        rt._cache_file()


def test_the_lsp_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pygls" else real(name, *a)
    )
    monkeypatch.delitem(sys.modules, "dsx.lsp", raising=False)
    with pytest.raises(MissingExtraError, match=r"dsx lsp.*pip install 'dsx\[lsp\]'"):
        importlib.import_module("dsx.lsp")
    monkeypatch.undo()
    importlib.import_module("dsx.lsp")


def test_missing_extra_error_is_exported_lazily_from_the_package_root() -> None:
    # ``except dsx.MissingExtraError`` works without reaching into a private module, and
    # ``import dsx`` does not import the extras module to offer the name.
    assert dsx.MissingExtraError is MissingExtraError
    assert "MissingExtraError" in dsx.__all__
    assert "MissingExtraError" in dir(dsx)
    probe = "import sys, dsx; print('dsx._extras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out
