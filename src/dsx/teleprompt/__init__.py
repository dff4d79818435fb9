"""dsx.teleprompt — see docs/ARCHITECTURE.md (arrives with its issue)."""
