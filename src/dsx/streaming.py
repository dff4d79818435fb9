"""Streaming with DSPy's names: ``dsx.streamify`` and what it yields.

See ``docs/streaming.md``. Everything here is defined in :mod:`dsx.runtime.streaming`.
"""

from __future__ import annotations

from dsx.runtime.streaming import StatusMessage as StatusMessage
from dsx.runtime.streaming import StatusMessageProvider as StatusMessageProvider
from dsx.runtime.streaming import StreamListener as StreamListener
from dsx.runtime.streaming import StreamResponse as StreamResponse
from dsx.runtime.streaming import streamify as streamify

__all__ = [
    "StatusMessage",
    "StatusMessageProvider",
    "StreamListener",
    "StreamResponse",
    "streamify",
]
