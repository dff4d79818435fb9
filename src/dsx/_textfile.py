"""Reading the text files a user hands dsx (``.dsx`` sources, data files, state and IR
files) with one clear message for each way that fails: missing, a directory, unreadable,
or not UTF-8.

Files are opened without blocking: a named pipe (FIFO) that no program writes to reads as
empty instead of hanging the command, while a pipe that has a writer (``<(command)`` in a
shell) is read to its end as usual.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from dsx.errors import DsxError

__all__ = ["TextFileError", "read_bytes", "read_text"]


class TextFileError(DsxError, ValueError):
    """A text file could not be read or decoded; the message says where and how to fix it."""


def read_bytes(path: str | os.PathLike[str], *, what: str = "file") -> bytes:
    """The bytes of ``path``; every failure is a :class:`TextFileError` naming it.

    A FIFO is opened with ``O_NONBLOCK`` (an ordinary open waits for a writer, forever if
    none comes) and then read blocking: with no writer that read ends at once, empty.
    """
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise TextFileError(f"{p}: no such {what}") from None
    except IsADirectoryError:
        raise TextFileError(f"{p} is a directory, not a {what}") from None
    except OSError as exc:
        raise TextFileError(f"{p}: cannot read the {what}: {_reason(exc)}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise TextFileError(f"{p} is a directory, not a {what}")
        if stat.S_ISSOCK(mode):
            raise TextFileError(f"{p} is a socket, not a {what}")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise TextFileError(f"{p}: cannot read the {what}: {_reason(exc)}") from None
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic link that points (in a loop) to itself"
    return exc.strerror or str(exc)


def read_text(path: str | os.PathLike[str], *, what: str = "file") -> str:
    """The UTF-8 text of ``path``; every failure is a :class:`TextFileError` naming it.

    A byte that is not UTF-8 is reported with its line and column, so the file can be
    fixed (or re-saved as UTF-8) without guessing.
    """
    p = Path(path)
    data = read_bytes(p, what=what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise TextFileError(
            f"{p} is not UTF-8 text: the byte 0x{data[exc.start]:02x} at line {line}, column "
            f"{column} cannot be decoded. Save the {what} as UTF-8."
        ) from None
