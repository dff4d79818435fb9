"""The runtime surface that modules written by ``dsx build`` import — and nothing else.

Generated code does ``from dsx.runtime import generated as _dsx`` and uses only the names in
``__all__`` (a test checks this), so the runtime can evolve behind a stable surface.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import sys
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, Field

from dsx import _version
from dsx.errors import DsxError
from dsx.runtime._interp import LoopGuard
from dsx.runtime.assertions import dsx_assert, dsx_suggest
from dsx.runtime.builtins import BUILTINS as _BUILTINS
from dsx.runtime.example import Example
from dsx.runtime.module import Module
from dsx.runtime.predict import ChainOfThought, Predict
from dsx.runtime.prediction import Prediction
from dsx.runtime.retrieve import Retrieve
from dsx.runtime.signature import InputField, OutputField, Signature
from dsx.runtime.types import History, Image

__all__ = [
    "Any",
    "BaseModel",
    "ChainOfThought",
    "Example",
    "Field",
    "History",
    "Image",
    "InputField",
    "Literal",
    "LoopGuard",
    "Module",
    "Optional",
    "OutputField",
    "Prediction",
    "Predict",
    "Retrieve",
    "Signature",
    "Union",
    "apply_state",
    "check_versions",
    "dsx_assert",
    "dsx_suggest",
    "import_python",
    "join",
    "kind",
    "lm",
    "lower",
    "mapped",
    "resource",
    "retriever",
    "signature",
    "strip",
    "sync_forward",
    "upper",
]

join = _BUILTINS["join"]
lower = _BUILTINS["lower"]
upper = _BUILTINS["upper"]
strip = _BUILTINS["strip"]


class VersionMismatch(DsxError, ImportError):
    """A generated module was built by another dsx or IR version."""


def check_versions(*, dsx: str, ir: int, source: str) -> None:
    """Refuse to run a module generated for another dsx / IR version."""
    from dsx.ir import IR_VERSION

    if ir != IR_VERSION or dsx.split(".")[:2] != _version.__version__.split(".")[:2]:
        raise VersionMismatch(
            f"This module was generated from {source} by dsx {dsx} (IR version {ir}); the "
            f"installed dsx is {_version.__version__} (IR version {IR_VERSION}). Rebuild it: "
            f"`dsx build {source}`."
        )


def kind(name: str) -> Any:
    """A module kind by name (ReAct, CodeAct, ...), with a clear error if unavailable."""
    import dsx

    found = getattr(dsx, name, None)
    if found is None:
        raise DsxError(f"{name} is not available in this version of dsx")
    return found


def signature(
    name: str, fields: list[tuple[str, str, Any, dict[str, Any]]], instructions: str
) -> Any:
    """A signature built from data (used when field names are not Python identifiers)."""
    from dsx.runtime.signature import Field as SigField
    from dsx.runtime.signature import signature_from_fields

    return signature_from_fields(
        name,
        [SigField(n, "input" if d == "in" else "output", t, **kw) for n, d, t, kw in fields],
        instructions,
    )


_import_lock = threading.RLock()


def import_python(module: str, generated_file: str, root: str = ".") -> Any:
    """Import a ``use python`` module for a generated module.

    The module's top-level package (or the module itself) is looked up first in ``root``,
    the .dsx file's folder given relative to the generated file's folder (``".."`` for the
    default ``build/``), then as usual (installed packages, ``sys.path``). ``sys.path`` is
    not changed: a module found in ``root`` is loaded from there and registered in
    ``sys.modules`` under its name, like any import. A module of that name imported before
    is reused. (Modules built by older versions pass an absolute folder, which still works.)
    """
    base = Path(os.path.normpath(Path(generated_file).parent / root))
    top = module.partition(".")[0]
    with _import_lock:
        try:
            if top not in sys.modules:
                spec = importlib.machinery.PathFinder.find_spec(top, [str(base)])
                if spec is not None and spec.loader is not None:
                    found = importlib.util.module_from_spec(spec)
                    sys.modules[top] = found
                    try:
                        spec.loader.exec_module(found)
                    except BaseException:
                        sys.modules.pop(top, None)
                        raise
            return importlib.import_module(module)
        except ImportError as exc:
            raise DsxError(
                f"cannot import `{module}` (declared with `use python`): {exc}. It is looked "
                f"for in {base} (the .dsx file's folder) and then among installed modules."
            ) from None


_loops = threading.local()


def sync_forward(aforward: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
    """The sync ``forward`` of a generated module: runs its one body, ``aforward``.

    Outside an event loop the coroutine runs on this thread's private loop (made once and
    reused, so a sync call costs no loop set-up); inside a running loop (a notebook, async
    code calling sync code) on a private loop in a helper thread. Sub-modules are called
    through ``acall`` either way, with the caller's context (settings, usage tracking).
    """

    @functools.wraps(aforward)
    def forward(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _run_sync(lambda: aforward(self, *args, **kwargs))

    return forward


def _run_sync(factory: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        from dsx.runtime.parallel import run_coroutine_sync

        return run_coroutine_sync(factory)
    loop = getattr(_loops, "loop", None)
    if loop is None or loop.is_closed():
        loop = _loops.loop = asyncio.new_event_loop()
    task = loop.create_task(factory())
    try:
        return loop.run_until_complete(task)
    except BaseException:
        if not task.done():  # interrupted (Ctrl-C): let the body unwind before re-raising
            task.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(task)
        raise


def mapped(func: Any) -> Any:
    """Add the .dsx location to exceptions raised inside a generated method."""
    filename = func.__code__.co_filename
    module_globals = func.__globals__  # _SOURCE_MAP is defined at the end of the module

    def annotate(exc: BaseException) -> None:
        if getattr(exc, "_dsx_mapped", False):
            return
        source_map: dict[int, tuple[str, int]] = module_globals.get("_SOURCE_MAP", {})
        tb = exc.__traceback__
        where = None
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == filename and tb.tb_lineno in source_map:
                where = source_map[tb.tb_lineno]
            tb = tb.tb_next
        if where is not None:
            exc.add_note(f"  at {where[0]}:{where[1]} (.dsx source)")
            with contextlib.suppress(AttributeError):
                exc._dsx_mapped = True  # type: ignore[attr-defined]

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def awrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await func(*args, **kwargs)
            except Exception as exc:
                annotate(exc)
                raise

        return awrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as exc:
            annotate(exc)
            raise

    return wrapper


def apply_state(program: Any, state: dict[str, Any] | None, name: str) -> Any:
    """Apply embedded learned state (instructions, demos, LM settings) to a program."""
    if state:
        from dsx.ir import Learned
        from dsx.runtime.instantiate import apply_learned

        apply_learned(program, Learned.model_validate(state), name)
    return program


def resource(factory: Callable[[], Any]) -> Callable[[], Any]:
    """A declared ``lm`` / ``retriever``: made on the first call, then shared."""
    return functools.cache(factory)


def lm(name: str, *, model: str | None = None, fallback: Any = (), settings: dict[str, Any]) -> Any:
    """The LM an ``lm`` declaration describes (``dsx.runtime.resources.make_lm``)."""
    from dsx.runtime.resources import make_lm

    return make_lm(name, model=model, fallback=fallback, settings=settings)


def retriever(
    name: str, kind: str, settings: dict[str, Any], generated_file: str, root: str = "."
) -> Any:
    """The retriever a ``retriever`` declaration describes; relative paths are relative to
    the .dsx file's folder, ``root`` relative to the generated module's folder."""
    from dsx.runtime.resources import make_retriever

    return make_retriever(name, kind, settings, Path(generated_file).resolve().parent / root)
