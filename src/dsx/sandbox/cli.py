"""Compatibility name of :mod:`dsx.cli.sandbox` (``dsx sandbox``), where the command now
lives; ``python -m dsx.sandbox.cli build-image ...`` still runs it alone (CI uses that).

The only module of :mod:`dsx.sandbox` that imports the rest of dsx: nothing in the
sandbox imports it (``tests/test_layering.py``).
"""

from __future__ import annotations

import sys

from dsx.cli.sandbox import add_parser as add_sandbox_command
from dsx.cli.sandbox import main

__all__ = ["add_sandbox_command", "main"]

if __name__ == "__main__":
    sys.exit(main())
