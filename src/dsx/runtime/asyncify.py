"""``dsx.asyncify`` and ``dsx.syncify``: DSPy's helpers for crossing between sync and async.

dsx modules are both already (``module(...)`` and ``await module.acall(...)``); these
helpers exist for code written against DSPy and for plain callables:

* ``asyncify(program)`` gives an async function. A dsx module is awaited through its
  ``acall``; any other callable runs in a worker thread, at most
  ``dsx.settings.async_max_workers`` at once, seeing the caller's settings overrides.
* ``syncify(program)`` makes a module that defines only ``aforward`` callable from sync code
  — also inside a running event loop (a notebook), where the coroutine runs on a worker
  thread's own loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import threading
import weakref
from collections.abc import Awaitable, Callable
from types import MethodType
from typing import Any

from dsx.runtime.module import Module
from dsx.runtime.settings import settings

__all__ = ["asyncify", "run_coroutine", "syncify"]

_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[int, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)
_limiters_lock = threading.Lock()


def _limiter() -> asyncio.Semaphore:
    """This event loop's bound on worker threads (rebuilt when the setting changes)."""
    size = int(settings.get("async_max_workers") or 8)
    if size < 1:
        raise ValueError(f"async_max_workers must be at least 1, got {size}")
    loop = asyncio.get_running_loop()
    with _limiters_lock:
        entry = _limiters.get(loop)
        if entry is None or entry[0] != size:
            entry = _limiters[loop] = (size, asyncio.Semaphore(size))
        return entry[1]


def asyncify(program: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """An async function that runs ``program`` without blocking the event loop.

    Args:
        program: a dsx module (awaited through ``acall``) or any callable (run in a worker
            thread with the caller's settings; ``dsx.configure(async_max_workers=N)``
            bounds how many run at once per event loop, 8 by default).
    """
    if not callable(program):
        raise TypeError(f"dsx.asyncify needs a module or a callable, got {type(program).__name__}")
    if isinstance(program, Module):

        @functools.wraps(program.acall)
        async def run_module(*args: Any, **kwargs: Any) -> Any:
            return await program.acall(*args, **kwargs)

        return run_module

    @functools.wraps(program)
    async def run_in_thread(*args: Any, **kwargs: Any) -> Any:
        async with _limiter():
            # to_thread copies the context: dsx.context(...) overrides follow the call.
            return await asyncio.to_thread(program, *args, **kwargs)

    return run_in_thread


def run_coroutine(coroutine: Any) -> Any:
    """Run ``coroutine`` to completion from sync code: on a fresh event loop, or — when this
    thread already runs one — on a worker thread's loop (the running loop cannot be
    re-entered), with the caller's context."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(context.run, asyncio.run, coroutine).result()


class _SyncWrapper(Module):
    """A module whose ``forward`` runs another module's ``aforward``."""

    def __init__(self, program: Module) -> None:
        self.program = program

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return run_coroutine(self.program.acall(*args, **kwargs))

    async def aforward(self, *args: Any, **kwargs: Any) -> Any:
        return await self.program.acall(*args, **kwargs)


def syncify(program: Module, in_place: bool = True) -> Module:
    """Make a module that defines ``aforward`` callable synchronously, even inside a
    running event loop.

    Args:
        program: the module; it must define ``aforward``.
        in_place: give ``program`` itself a ``forward`` (the default, as in DSPy); with
            ``False``, return a wrapper module holding it as ``.program`` instead.
    """
    if not isinstance(program, Module):
        raise TypeError(f"dsx.syncify needs a dsx.Module, got {type(program).__name__}")
    if type(program).aforward is Module.aforward:
        raise TypeError(
            f"{type(program).__name__} defines no aforward(): it is synchronous already"
        )
    if not in_place:
        return _SyncWrapper(program)

    def forward(self: Module, *args: Any, **kwargs: Any) -> Any:
        return run_coroutine(type(self).aforward(self, *args, **kwargs))

    program.forward = MethodType(forward, program)  # type: ignore[method-assign]
    return program
