"""Assertions and suggestions inside programs (``assert``/``suggest`` in .dsx forward bodies).

A failed assert raises :class:`~dsx.AssertionFailed`; a failed suggestion is logged.
Backtracking (retrying the predictor that produced the offending output) builds on these.
"""

from __future__ import annotations

import logging
from typing import Any

from dsx.errors import AssertionFailed

__all__ = ["dsx_assert", "dsx_suggest"]

log = logging.getLogger("dsx")


def dsx_assert(ok: Any, message: str = "", *, where: str = "") -> None:
    if not ok:
        at = f" ({where})" if where else ""
        raise AssertionFailed(f"assertion failed{at}: {message or 'condition is false'}")


def dsx_suggest(ok: Any, message: str = "", *, where: str = "") -> None:
    if not ok:
        at = f" ({where})" if where else ""
        log.warning("suggestion not met%s: %s", at, message or "condition is false")
