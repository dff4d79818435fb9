"""One exception root: whatever dsx raises, the sandbox included, is a ``dsx.DsxError``."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import dsx
import dsx.sandbox

SANDBOX = Path(dsx.sandbox.__file__).parent


def test_every_sandbox_exception_is_a_dsx_error_and_keeps_its_builtin():
    raised = [
        obj
        for name in dsx.sandbox.__all__
        if inspect.isclass(obj := getattr(dsx.sandbox, name)) and issubclass(obj, Exception)
    ]
    assert {c.__name__ for c in raised} >= {"SandboxError", "SandboxUnavailable", "UnsafeGrant"}
    assert [c.__name__ for c in raised if not issubclass(c, dsx.DsxError)] == []
    # `except RuntimeError` (what callers caught before) still works.
    assert issubclass(dsx.sandbox.SandboxError, RuntimeError)
    assert issubclass(dsx.sandbox.UnsafeGrant, ValueError)


def test_a_real_sandbox_failure_is_caught_by_except_dsx_error():
    sandbox = dsx.sandbox.create_sandbox("wasmtime")
    sandbox.close()
    with pytest.raises(dsx.DsxError) as caught:
        sandbox.execute("1 + 1")  # used after close: SandboxClosed
    assert isinstance(caught.value, dsx.sandbox.SandboxClosed)
    with pytest.raises(dsx.DsxError) as caught:
        # A grant of the host's own code is refused before anything starts.
        dsx.sandbox.create_sandbox("wasmtime", mounts=[dsx.sandbox.Mount(str(SANDBOX), "/code")])
    assert isinstance(caught.value, dsx.sandbox.UnsafeGrant)


def test_the_root_module_imports_nothing():
    # dsx.sandbox may import it only because it imports nothing (tests/test_layering.py).
    tree = ast.parse(Path(dsx.errors.__file__).with_name("_errors_base.py").read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert [ast.unparse(n) for n in imports] == ["from __future__ import annotations"]
    assert dsx.errors.DsxError is dsx.DsxError
