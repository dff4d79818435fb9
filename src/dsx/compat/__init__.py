"""Compatibility layers: run code written for other frameworks on dsx.

``dsx.compat.dspy`` maps DSPy's public names and module paths onto dsx (see
``docs/migrating.md``).
"""

from __future__ import annotations

__all__: list[str] = []
