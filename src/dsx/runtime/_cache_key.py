"""The LM cache's key: a SHA-256 of a request's *meaning* (model, messages, sampling
parameters, ``rollout_id``), never of endpoints, keys, headers, timeouts or retry counts.

Kept apart from :mod:`dsx.runtime.cache` (which re-exports :func:`request_key` and
:data:`NON_SEMANTIC_PARAMS`), whose subject is storing and finding entries.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["NON_SEMANTIC_PARAMS", "request_key"]

#: Request parameters that do not change what the model answers: left out of the key.
NON_SEMANTIC_PARAMS = frozenset(
    {
        "api_key",
        "api_base",
        "base_url",
        "api_version",
        "organization",
        "headers",
        "extra_headers",
        "timeout",
        "request_timeout",
        "num_retries",
        "max_retries",
        "cache",
        "stream",
        "stream_options",
        "metadata",
        "rollout_id",
    }
)

# Bump when the key recipe or the entry format changes: old entries then simply miss.
_KEY_VERSION = "dsx-lm-2"  # 2: checksummed entries


def _json_default(value: Any) -> Any:
    # Pydantic models (instances and classes, e.g. a response_format) and other objects:
    # something stable where possible, repr otherwise (a repr with an address only
    # makes the request uncacheable in practice, never wrong).
    if isinstance(value, type) and hasattr(value, "model_json_schema"):
        return {"__schema__": value.model_json_schema()}
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, set | frozenset):
        return sorted(map(repr, value))
    if isinstance(value, bytes):
        return value.hex()
    return repr(value)


def request_key(
    *,
    model: str,
    messages: Any,
    params: dict[str, Any],
    rollout_id: Any = None,
    model_type: str = "chat",
) -> str:
    """The cache key of a request: SHA-256 of its canonical JSON.

    ``params`` listed in :data:`NON_SEMANTIC_PARAMS` (endpoints, secrets, timeouts, retry
    counts, streaming) and ``None`` values are left out, so they never split or leak into
    keys. A ``rollout_id`` other than ``None`` is part of the key: distinct ids give
    distinct cached samples.
    """
    payload: dict[str, Any] = {
        "v": _KEY_VERSION,
        "model": model,
        "model_type": model_type,
        "messages": messages,
        "params": {
            k: v for k, v in params.items() if k not in NON_SEMANTIC_PARAMS and v is not None
        },
    }
    if rollout_id is not None:
        payload["rollout_id"] = rollout_id
    blob = json.dumps(
        payload,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=_json_default,
    )
    # surrogatepass: a lone surrogate in a message (an escaped one in an earlier reply) still
    # gives a key, distinct from every valid text's.
    return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()
