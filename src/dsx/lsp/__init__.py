"""dsx.lsp — the language server (``dsx lsp``): diagnostics, completion, hover,
navigation, rename, symbols, formatting, semantic tokens, code lenses and quick fixes.

Importing this package is cheap (pygls loads only when a server is created): the CLI adds
its ``lsp`` command through :mod:`dsx.lsp.cli`. The feature modules convert between the
front end's code-point offsets and LSP positions with :mod:`dsx.lsp.codec` only.
"""

from __future__ import annotations

__all__: list[str] = []
