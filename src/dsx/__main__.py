"""``python -m dsx`` — the ``dsx`` command line, for environments without the console script
(and for editors that know an interpreter rather than an executable)."""

from __future__ import annotations

import sys

from dsx.cli import main

if __name__ == "__main__":
    sys.exit(main())
