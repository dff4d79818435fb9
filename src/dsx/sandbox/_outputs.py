"""Reading what the guest left in a writable grant, without trusting its shape.

Whatever is in a writable grant after an execution was made by hostile code: a file may
be a symlink to ``/etc/shadow`` or to the host user's SSH key, a FIFO that blocks any
reader forever, a directory swapped for a link between a check and an open, or a file
with the setuid bit. :func:`read_output` walks the path one component at a time with
``O_NOFOLLOW`` (relative to the grant's descriptor, so no symlink anywhere in the path
is followed), opens the file non-blocking, and accepts only a regular file of bounded
size. Never execute, import or ``chmod`` what a guest wrote.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import PurePosixPath

from dsx.sandbox._types import Mount, SandboxError

__all__ = ["DEFAULT_MAX_OUTPUT_FILE", "UnsafeOutput", "read_output"]

#: Bytes :func:`read_output` reads at most by default.
DEFAULT_MAX_OUTPUT_FILE = 64 * 1024 * 1024

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class UnsafeOutput(SandboxError, ValueError):
    """A file in a grant is not a plain regular file reached without symlinks."""


def read_output(
    grant: Mount | str | os.PathLike[str],
    path: str,
    *,
    max_bytes: int = DEFAULT_MAX_OUTPUT_FILE,
) -> bytes:
    """The bytes of ``path`` (relative to the granted directory) as the guest left them.

    Args:
        grant: the :class:`Mount` (or its host directory).
        path: the file inside it, relative (``"out/result.json"``).
        max_bytes: refuse a larger file.

    Raises:
        UnsafeOutput: a symlink anywhere on the way, ``..``, not a regular file, or too
            large.
        FileNotFoundError: no such file.
    """
    root = grant.host_path if isinstance(grant, Mount) else os.fspath(grant)
    parts = PurePosixPath(path).parts
    if not parts or PurePosixPath(path).is_absolute() or ".." in parts:
        raise UnsafeOutput(f"{path!r} must be a relative path inside the grant, without '..'")
    fd = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = (os.O_NONBLOCK if last else _DIRECTORY) | os.O_RDONLY | _NOFOLLOW | _CLOEXEC
            parent, fd = fd, _step(fd, part, flags, path)
            os.close(parent)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeOutput(f"{path!r} in the grant is not a regular file")
        if st.st_size > max_bytes:
            raise UnsafeOutput(f"{path!r} has {st.st_size} bytes, over max_bytes={max_bytes}")
        chunks, left = [], max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > max_bytes:  # it grew while we read
            raise UnsafeOutput(f"{path!r} has over max_bytes={max_bytes} bytes")
        return data
    finally:
        os.close(fd)


def _step(dir_fd: int, name: str, flags: int, path: str) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        # ELOOP: a symlink met O_NOFOLLOW; ENOTDIR: a symlink (or file) where a directory
        # should be.
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeOutput(
                f"{path!r} in the grant goes through a symlink or a non-directory"
            ) from None
        raise
