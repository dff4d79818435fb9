"""The runtime's name for :mod:`dsx._files` (atomic writes), which moved to the top level so
that :mod:`dsx.sandbox`, which imports nothing else of dsx, writes through it too."""

from __future__ import annotations

from dsx._files import STALE_TEMP_SECONDS, atomic_write, remove_stale_temps, temp_name

__all__ = ["STALE_TEMP_SECONDS", "atomic_write", "remove_stale_temps", "temp_name"]
