"""Issue 15: nothing a guest does can get native code of its choosing run in the host.

The compiled CPython-WASI module is native code that the host maps and runs at every
session start. A guest must never be able to choose those bytes: grants that overlap the
cache (or any host code) are refused, and only bytes whose HMAC dsx recorded are loaded.
"""

from __future__ import annotations

import hashlib
import shutil
import site
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsx.sandbox import Mount, PythonInterpreter, create_sandbox
from dsx.sandbox import _wasm_runtime as rt

pytestmark = pytest.mark.sandbox


def _sha256(path: str | Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@pytest.fixture
def deserialized(
    monkeypatch: pytest.MonkeyPatch, wasm_module: None
) -> Iterator[dict[str, set[str]]]:
    """Record the sha256 of every compiled module handed to wasmtime.

    Bytes listed in ``["forbidden"]`` are never passed on: a failing test must not run
    patched machine code in the test process.
    """
    import wasmtime

    seen: dict[str, set[str]] = {"seen": set(), "forbidden": set()}
    real_file = wasmtime.Module.deserialize_file
    real_bytes = wasmtime.Module.deserialize

    def check(digest: str) -> None:
        seen["seen"].add(digest)
        if digest in seen["forbidden"]:
            raise AssertionError("the host deserialized a compiled module the guest patched")

    def from_file(cls: type, engine: object, path: str) -> object:
        check(_sha256(path))
        return real_file(engine, path)

    def from_bytes(cls: type, engine: object, data: bytes) -> object:
        check(hashlib.sha256(bytes(data)).hexdigest())
        return real_bytes(engine, data)

    monkeypatch.setattr(wasmtime.Module, "deserialize_file", classmethod(from_file))
    monkeypatch.setattr(wasmtime.Module, "deserialize", classmethod(from_bytes))
    yield seen


_PATCH = """
import os
d = '/home/.cache/dsx/wasmtime'
name = [n for n in os.listdir(d) if n.endswith('.cwasm')][0]
data = bytearray(open(f'{d}/{name}', 'rb').read())
mid = len(data) // 2
data[mid : mid + 64] = bytes(b ^ 0xFF for b in data[mid : mid + 64])  # 'new machine code'
with open(f'{d}/{name}.new', 'wb') as f:
    f.write(data)
os.rename(f'{d}/{name}.new', f'{d}/{name}')
name
"""


def test_a_guest_patching_the_module_cache_never_gets_it_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deserialized: dict[str, set[str]]
) -> None:
    # The host's cache lives in its home; the guest was granted the home, writable.
    home = tmp_path / "home"
    cache = home / ".cache" / "dsx"
    shutil.copytree(rt.cache_dir(), cache / "wasmtime", ignore=shutil.ignore_patterns("*.lock"))
    sb = create_sandbox(mounts=[Mount(str(home), "/home", writable=True)])
    sb.start()
    r = sb.execute(_PATCH)
    assert r.ok, r.error
    cwasm = cache / "wasmtime" / str(r.value)
    patched = _sha256(cwasm)
    deserialized["forbidden"].add(patched)
    # From now on the host uses that cache, as a fresh process would.
    monkeypatch.setenv("DSX_CACHE_DIR", str(cache))
    monkeypatch.setattr(rt, "_compiled", None)
    # The guest forces the automatic restart that used to load the patched module.
    try:
        r = sb.execute("import os\nos._exit(1)")
        assert r.session_reset
    finally:
        sb.close()
    assert patched not in deserialized["seen"]
    # A session with that cache still starts; the patched file is replaced, never loaded.
    monkeypatch.setattr(rt, "_compile_to", _fake_compile(monkeypatch))
    with create_sandbox() as fresh:
        assert fresh.execute("6 * 7").value == 42
    assert patched not in deserialized["seen"]
    assert _sha256(cwasm) != patched


def _fake_compile(monkeypatch: pytest.MonkeyPatch) -> object:
    """Recompiling costs 5-12 s: write the pristine compiled bytes back, tagged, instead."""
    pristine = rt._ensure()
    with open(pristine.fd_path, "rb") as handle:
        good = handle.read()

    def compile_to(target: Path, wasm: bytes, key: bytes) -> bytes:
        assert hashlib.sha256(wasm).hexdigest() == rt.RUNTIME_SHA256  # from verified bytes
        rt.atomic_write(target, (rt._MAGIC, rt._tag(key, good), good), private=True)
        return good

    return compile_to


def test_a_tampered_cache_file_is_never_deserialized(
    monkeypatch: pytest.MonkeyPatch, deserialized: dict[str, set[str]]
) -> None:
    compile_to = _fake_compile(monkeypatch)
    path = rt.compiled_module_path()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))  # in place: same inode, same owner and mode
    deserialized["forbidden"].add(_sha256(path))
    monkeypatch.setattr(rt, "_compile_to", compile_to)
    monkeypatch.setattr(rt, "_compiled", None)  # as in a new process
    module = rt.load_module(rt.new_engine())
    assert module is not None
    assert rt._read_verified(path, rt._install_key(path.parent)) is not None  # repaired


def test_later_changes_to_the_cache_file_do_not_reach_running_processes(
    monkeypatch: pytest.MonkeyPatch, deserialized: dict[str, set[str]]
) -> None:
    rt.load_module(rt.new_engine())  # this process has checked and pinned its copy
    path = rt.compiled_module_path()
    good = path.read_bytes()
    try:
        data = bytearray(good)
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        deserialized["forbidden"].add(_sha256(path))
        with create_sandbox() as sb:  # a restart in the same process
            assert sb.execute("1 + 1").value == 2
    finally:
        path.write_bytes(good)


def test_the_verification_key_is_private(wasm_module: None) -> None:
    key = rt.cache_dir() / rt.KEY_FILE
    assert key.stat().st_mode & 0o077 == 0 and key.stat().st_size == 32


@pytest.mark.parametrize("writable", [False, True], ids=["read", "write"])
@pytest.mark.parametrize("backend", ["wasmtime", "docker"])
def test_grants_that_hold_host_code_are_refused(
    backend: str, writable: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dsx.sandbox import UnsafeGrant

    cache_parent = rt.cache_dir().parent
    cache_parent.mkdir(parents=True, exist_ok=True)
    targets = {
        "the cache": rt.cache_dir().parent,  # contains it
        "sys.prefix": Path(sys.prefix),
        "site-packages": Path(site.getsitepackages()[0]),
        "inside site-packages": Path(rt.runtime_path()).parent,
        "dsx itself": Path(rt.__file__).parent,
    }
    for what, path in targets.items():
        with pytest.raises(UnsafeGrant, match="refusing to grant") as info:
            create_sandbox(backend, mounts=[Mount(str(path), writable=writable)])
        assert "holds host code" in str(info.value), what
    with pytest.raises(UnsafeGrant):
        PythonInterpreter(backend=backend, enable_write_paths=[cache_parent.parent])


def test_the_runtime_package_is_located_without_running_its_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, rt.RUNTIME_PACKAGE, raising=False)
    path = rt.runtime_path()
    assert path.name == rt.RUNTIME_FILE
    assert rt.RUNTIME_PACKAGE not in sys.modules
