"""The dsx version and the schema versions of what it writes."""

from __future__ import annotations

__version__ = "0.1.0"

#: Version of the saved-state JSON format (``dsx.runtime.state``: Module.save, dsx optimize, dsx build).
STATE_SCHEMA_VERSION = 2
