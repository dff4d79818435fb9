"""Atomic file writes: the one helper behind every file dsx writes.

``dsx build`` (generated modules, state files, the optimize cache), ``Module.save``,
:func:`dsx.runtime.state.write_state` and ``dsx fmt`` all write through
:func:`atomic_write`, so they behave the same:

* **Atomic.** The data goes to a temporary file ``.NAME.XXXXXXXX.tmp`` beside the target,
  is flushed (and fsynced), then renamed over the target: a crash leaves the old file or
  the new one, whole.
* **Modes like any other tool.** A new file gets the default mode of ``open()``
  (``0o666`` less the umask: ``0644`` under the usual umask ``022``); an existing file
  keeps its permission bits. (``tempfile.mkstemp`` would create ``0600`` files.)
* **Private files on request.** ``private=True`` creates the file ``0600`` (owner only)
  from its first byte, whatever an existing file's mode was, and replaces a target that is
  not a regular file instead of writing into it: for secrets and caches (the sandbox's key
  and compiled modules).
* **Devices and pipes are written into, never replaced.** A target that exists and is
  not a regular file (``/dev/null``, ``/dev/stdout``, a FIFO) is written directly; a FIFO
  that no program reads is an error at once (``ENXIO``), not a hang.
* **Stale temporary files are cleaned up.** A write killed between creating its temporary
  file and renaming it leaves ``.NAME.XXXXXXXX.tmp`` behind. The next write to the same
  path removes such files when they were last modified more than
  :data:`STALE_TEMP_SECONDS` ago; younger ones may belong to a writer still at work and are
  left alone.

This module imports nothing but the standard library: the runtime, the toolchain and the
otherwise dsx-free sandbox all use it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable
from pathlib import Path

__all__ = ["STALE_TEMP_SECONDS", "atomic_write", "remove_stale_temps", "temp_name"]

#: A temporary file of a write to the same path, untouched for this many seconds, is
#: taken to be left over from a killed run and removed by the next write.
STALE_TEMP_SECONDS = 300.0


def temp_name(path: Path) -> Path:
    """A fresh temporary name beside ``path``: ``.NAME.XXXXXXXX.tmp``."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def _temp_pattern(name: str) -> re.Pattern[str]:
    # The middle part has no dot, so the temporary files of "a.b" never match those of "a".
    # mkstemp's names ([a-z0-9_]{8}), as older dsx versions wrote them, match too.
    return re.compile(rf"\.{re.escape(name)}\.[A-Za-z0-9_]+\.tmp")


def remove_stale_temps(path: Path, *, older_than: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Remove the temporary files of killed writes to ``path`` (see the module docstring).

    Returns:
        The files removed. Errors (a vanished file, a read-only directory) are ignored.
    """
    pattern = _temp_pattern(path.name)
    cutoff = time.time() - older_than
    removed: list[Path] = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def atomic_write(
    path: str | os.PathLike[str],
    data: str | bytes | Iterable[bytes],
    *,
    fsync: bool = True,
    make_parents: bool = True,
    private: bool = False,
) -> None:
    """Replace ``path`` by ``data`` atomically (see the module docstring for modes and clean-up).

    Args:
        path: the file to write.
        data: the content: text (written as UTF-8, line endings unchanged), bytes, or byte
            strings written one after the other (no copy joins them).
        fsync: flush the data to the disk before the rename (durable across a power loss).
        make_parents: create missing parent directories.
        private: create the file ``0600`` from its first byte, whatever mode an existing
            file had, and replace (never write into) a target that is not a regular file.

    Raises:
        OSError: the file cannot be written; the target is then unchanged and no
            temporary file is left.
    """
    path = Path(path)
    if isinstance(data, str):
        parts: tuple[bytes, ...] = (data.encode("utf-8"),)
    elif isinstance(data, bytes | bytearray | memoryview):
        parts = (bytes(data) if not isinstance(data, bytes) else data,)
    else:
        parts = tuple(data)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        st: os.stat_result | None = os.stat(path)
    except OSError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode) and not private:
        _write_special(path, st.st_mode, b"".join(parts))
        return
    if private:
        mode: int | None = 0o600
    else:
        mode = st.st_mode & 0o7777 if st is not None else None
    remove_stale_temps(path)
    tmp = temp_name(path)
    # O_EXCL: never reuse or follow someone else's file. 0o666: the kernel applies the
    # umask (and a directory's default ACL) exactly as for any newly created file.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, 0o600 if private else 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            for part in parts:
                fh.write(part)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_special(path: Path, mode: int, payload: bytes) -> None:
    """Write into an existing file that is not a regular one (``/dev/null``, ``/dev/stdout``,
    a FIFO), as any tool does: renaming over it would replace a device node (as root) or a
    pipe with a plain file."""
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path))
    # O_NONBLOCK: a FIFO no program reads is ENXIO at once instead of a wait forever.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OSError(
                errno.ENXIO, "a named pipe (FIFO) that no program reads", str(path)
            ) from None
        raise
    try:
        os.set_blocking(fd, True)
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
