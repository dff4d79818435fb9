"""dsx.compiler — see docs/ARCHITECTURE.md (arrives with its issue)."""
