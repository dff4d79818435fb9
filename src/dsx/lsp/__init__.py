"""dsx.lsp — see docs/ARCHITECTURE.md (arrives with its issue)."""
