"""``python -m dsx.cli`` — the same as ``dsx`` (and ``python -m dsx``)."""

from __future__ import annotations

import sys

from dsx.cli import main

if __name__ == "__main__":
    sys.exit(main())
