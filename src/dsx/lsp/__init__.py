"""dsx.lsp — the language server (``dsx lsp``): diagnostics, completion, hover,
navigation, rename, symbols, formatting, semantic tokens, code lenses and quick fixes.

Importing this package is cheap (pygls loads only when a server is created): the CLI adds
its ``lsp`` command through :mod:`dsx.lsp.cli`. The feature modules convert between the
front end's code-point offsets and LSP positions with :mod:`dsx.lsp.codec` only.
"""

from __future__ import annotations

from dsx._extras import check

# Looked up, not imported (cheap): without the lsp extra, `dsx lsp` says what to install.
check("lsp", "pygls", feature="The language server (dsx lsp)")
check("lsp", "lsprotocol", feature="The language server (dsx lsp)")

__all__: list[str] = []
