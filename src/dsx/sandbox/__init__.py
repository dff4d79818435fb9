"""dsx.sandbox — see docs/ARCHITECTURE.md (arrives with its issue)."""
