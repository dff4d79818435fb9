"""dsx.ir — see docs/ARCHITECTURE.md (arrives with its issue)."""
