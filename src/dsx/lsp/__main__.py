"""``python -m dsx.lsp`` — the same as ``dsx lsp``."""

from __future__ import annotations

import sys

from dsx.lsp.cli import main

if __name__ == "__main__":
    sys.exit(main())
