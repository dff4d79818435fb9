"""Reading the text files a user hands dsx (``.dsx`` sources, data files) with one clear
message for each way that fails: missing, a directory, unreadable, or not UTF-8."""

from __future__ import annotations

import os
from pathlib import Path

from dsx.errors import DsxError

__all__ = ["TextFileError", "read_text"]


class TextFileError(DsxError, ValueError):
    """A text file could not be read or decoded; the message says where and how to fix it."""


def read_text(path: str | os.PathLike[str], *, what: str = "file") -> str:
    """The UTF-8 text of ``path``; every failure is a :class:`TextFileError` naming it.

    A byte that is not UTF-8 is reported with its line and column, so the file can be
    fixed (or re-saved as UTF-8) without guessing.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise TextFileError(f"{p}: no such {what}") from None
    except IsADirectoryError:
        raise TextFileError(f"{p} is a directory, not a {what}") from None
    except OSError as exc:
        raise TextFileError(f"{p}: cannot read the {what}: {exc.strerror or exc}") from None
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
