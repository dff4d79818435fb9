"""``DSX_LM=local``: one local model server per process, started on first use.

The CLI's ``--lm local`` (and ``DSX_LM=local``) calls :func:`lm_for` or
:func:`settings_for`; the server they start stops when the process exits.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from dsx.local._server import LocalModelServer

if TYPE_CHECKING:
    from dsx.runtime.lm import LM

__all__ = ["is_local", "lm_for", "settings_for", "shared_server"]

_shared: dict[str, LocalModelServer] = {}
_shared_lock = threading.Lock()


def is_local(name: str | None) -> bool:
    """Whether an LM name means the local model: ``"local"`` or ``"local:PATH.gguf"``."""
    return name is not None and (name == "local" or name.startswith("local:"))


def shared_server(model: str | os.PathLike[str] | None = None) -> LocalModelServer:
    """The process's server for ``model``, started on first use, stopped at exit."""
    key = str(model or "")
    with _shared_lock:
        server = _shared.get(key)
        if server is None:
            server = _shared[key] = LocalModelServer(model)
    return server.start()


def lm_for(name: str, **lm_kwargs: Any) -> LM:
    """The :class:`dsx.LM` that ``--lm local`` / ``DSX_LM=local`` stands for.

    Starts the process's shared local model server on first use (``"local:PATH"`` serves
    the GGUF file at PATH) and returns an LM pointing at it; the server stops when the
    process exits. Pair it with :class:`dsx.JSONAdapter` (see :func:`settings_for`).

    Raises:
        ValueError: ``name`` is not ``"local"`` or ``"local:PATH"``.
        LocalModelUnavailable: the server or the model is not installed (with the fix).
        LocalModelError: the server failed to start.
    """
    return settings_for(name, **lm_kwargs)["lm"]


def settings_for(name: str, **lm_kwargs: Any) -> dict[str, Any]:
    """Like :func:`lm_for`, as ``{"lm": ..., "adapter": JSONAdapter()}`` for ``dsx.configure``."""
    if not is_local(name):
        raise ValueError(f"not a local model name: {name!r} (expected 'local' or 'local:PATH')")
    path = name.partition(":")[2] or None
    return shared_server(path).settings(**lm_kwargs)
