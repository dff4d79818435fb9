"""The one module that imports LiteLLM: on first use, offline-safe and quiet.

``import litellm`` costs seconds, so nothing imports it at ``import dsx``; :func:`load` does
on the first request that goes through it (:class:`dsx.LM`, :class:`dsx.Embedder`).
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from typing import Any

from dsx._extras import require

__all__ = ["load"]

_litellm: Any = None
_import_lock = threading.Lock()
#: What needs LiteLLM, the subject of the message when the lm extra is missing.
_FEATURE = (
    "Sending requests through LiteLLM (dsx.LM for a provider that is not an OpenAI-compatible "
    "endpoint, or transport='litellm'; dsx.Embedder's remote models)"
)
_READONLY_WARNING = r"Item '.*' on TypedDict class '.*' is using the `ReadOnly` qualifier"

#: Log messages of LiteLLM and urllib3 that say only that many calls run at once: at the
#: concurrency dsx uses they come by the hundred and need no action.
_POOL_NOISE = ("aiohttp connection pool saturated", "Connection pool is full")


def load() -> Any:
    """The ``litellm`` module, imported once."""
    global _litellm
    if _litellm is None:
        with _import_lock:
            if _litellm is None:
                # Without this LiteLLM fetches its cost map over the network at import and
                # retries for seconds when offline.
                os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
                litellm = require("lm", "litellm", feature=_FEATURE)

                # LiteLLM's own pydantic usage warns at run time; none of it is actionable
                # for dsx users.
                warnings.filterwarnings("ignore", category=DeprecationWarning, module="litellm")
                warnings.filterwarnings("ignore", message=_READONLY_WARNING, category=UserWarning)
                litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banners
                litellm.set_verbose = False
                for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
                    logger = logging.getLogger(name)
                    if logger.level == logging.NOTSET or logger.level < logging.WARNING:
                        logger.setLevel(logging.WARNING)
                    logger.addFilter(_quiet_pool_warnings)
                # LiteLLM's sync clients go through urllib3 in places; at high concurrency it
                # logs "Connection pool is full" for every connection it does not keep.
                logging.getLogger("urllib3.connectionpool").addFilter(_quiet_pool_warnings)
                _litellm = litellm
    return _litellm


def _quiet_pool_warnings(record: logging.LogRecord) -> bool:
    message = record.msg if isinstance(record.msg, str) else ""
    return not message.startswith(_POOL_NOISE)
