"""The root of the dsx exception tree, in a module that imports nothing.

:class:`DsxError` lives here, not in :mod:`dsx.errors`, so that :mod:`dsx.sandbox` (which
imports nothing else of dsx: it must stay usable and auditable alone) can derive its
errors from it too; ``except dsx.DsxError`` then catches a sandbox failure like any other.
:mod:`dsx.errors` re-exports it. Nothing may be added here that imports anything.
"""

from __future__ import annotations

__all__ = ["DsxError"]


class DsxError(Exception):
    """Root of every error raised by dsx."""

    __module__ = "dsx.errors"  # where users import it from, in tracebacks and reprs
