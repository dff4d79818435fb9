"""dsx.grammar — see docs/ARCHITECTURE.md (arrives with its issue)."""
