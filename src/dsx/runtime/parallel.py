"""The batch engine: run a program over many inputs concurrently on one asyncio event loop.

Everything that runs many examples — :class:`~dsx.Evaluate`, :class:`Parallel`,
``Module.batch`` and the optimizers — goes through :func:`run_concurrently`: a fixed set of
worker tasks pull items in input order, so at most ``concurrency`` run at once and a stop
(``max_errors``, a budget, Ctrl-C) takes effect before the next item starts. Async programs
(and LMs) run natively on the loop; sync-only ones run in a thread pool sized to the same
bound (:class:`Engine`), never in asyncio's small default pool.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from dsx.errors import DsxError
from dsx.runtime.example import Example
from dsx.runtime.settings import settings

__all__ = [
    "BatchError",
    "Engine",
    "Outcome",
    "Parallel",
    "run_batch",
    "run_concurrently",
    "run_coroutine_sync",
]

T = TypeVar("T")


class BatchError(DsxError, RuntimeError):
    """A batch stopped because ``max_errors`` examples failed."""


# -- running coroutines from sync code ------------------------------------------------------


def run_coroutine_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even if an event loop is running here.

    Outside a loop this is ``asyncio.run`` (whose Ctrl-C handling cancels the coroutine and
    then raises ``KeyboardInterrupt``). Inside one (a notebook, an async app calling sync
    code) the coroutine runs on a private loop in a helper thread; a ``KeyboardInterrupt``
    while waiting for it cancels the coroutine there, waits for it to unwind and re-raises.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_as_coroutine(factory))
    ctx = contextvars.copy_context()
    box: dict[str, Any] = {}
    started = threading.Event()

    def target() -> None:
        loop = asyncio.new_event_loop()
        try:
            task = loop.create_task(_as_coroutine(factory), context=ctx)
            box["loop"], box["task"] = loop, task
            started.set()
            box["value"] = loop.run_until_complete(task)
        except BaseException as exc:
            box["error"] = exc
        finally:
            started.set()
            loop.close()

    thread = threading.Thread(target=target, name="dsx-batch", daemon=True)
    thread.start()
    try:
        thread.join()
    except KeyboardInterrupt:
        started.wait()
        if "task" in box:
            box["loop"].call_soon_threadsafe(box["task"].cancel)
        thread.join()
        raise
    if "error" in box:
        raise box["error"]
    return box["value"]


async def _as_coroutine(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


# -- calling programs: natively async or in a bounded pool ----------------------------------


def is_async_callable(fn: Any) -> bool:
    """Whether calling ``fn`` is best done with ``await`` (an async module or function)."""
    from dsx.runtime.module import Module

    if isinstance(fn, Module):
        return type(fn).aforward is not Module.aforward
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - a callable object's method
    return inspect.iscoroutinefunction(call)


class Engine:
    """Calls programs and metrics for one batch run.

    Async modules and coroutine functions are awaited on the loop; sync callables run in a
    thread pool of at most ``concurrency`` threads, created on first use. Each pool call
    runs in a copy of the caller's context, so ``dsx.context`` overrides, traces and usage
    tracking follow it into the thread.
    """

    def __init__(self, concurrency: int) -> None:
        self.concurrency = max(1, concurrency)
        self._pool: ThreadPoolExecutor | None = None

    async def call(self, fn: Any, args: Sequence[Any] = (), kwargs: Mapping[str, Any] = {}) -> Any:
        """``fn(*args, **kwargs)``: awaited when async (modules via ``acall``), else pooled."""
        from dsx.runtime.module import Module

        if isinstance(fn, Module):
            if type(fn).aforward is not Module.aforward:
                return await fn.acall(*args, **kwargs)
            return await self.in_thread(fn, *args, **kwargs)
        if is_async_callable(fn):
            return await fn(*args, **kwargs)
        return await self.in_thread(fn, *args, **kwargs)

    async def in_thread(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="dsx-worker")
        ctx = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, functools.partial(ctx.run, fn, *args, **kwargs)
        )

    def close(self, *, wait: bool = True) -> None:
        if self._pool is not None:
            # After an interruption, threads still running a sync program are not waited for.
            self._pool.shutdown(wait=wait, cancel_futures=not wait)
            self._pool = None


# -- the run loop -------------------------------------------------------------------------


@dataclass
class Outcome(Generic[T]):
    """What a run produced so far (filled in while it runs, so it survives an interruption).

    Attributes:
        results: per input, the value (``None`` where it failed or did not run).
        errors: ``(index, exception)`` per failed input, in the order they failed.
        done: per input, whether it finished (successfully or not).
        stopped: why the run ended before every input ran, or ``None``.
    """

    size: int
    results: list[T | None] = field(default_factory=list)
    errors: list[tuple[int, BaseException]] = field(default_factory=list)
    done: list[bool] = field(default_factory=list)
    stopped: str | None = None

    def __post_init__(self) -> None:
        self.results = [None] * self.size
        self.done = [False] * self.size

    @property
    def num_done(self) -> int:
        return sum(self.done)

    @property
    def complete(self) -> bool:
        return self.stopped is None and all(self.done)


async def run_concurrently(
    func: Callable[[Any], Awaitable[T]],
    items: Sequence[Any],
    *,
    concurrency: int,
    max_errors: int | None = None,
    should_stop: Callable[[], str | None] | None = None,
    on_done: Callable[[int, T | None, BaseException | None], None] | None = None,
    outcome: Outcome[T] | None = None,
) -> Outcome[T]:
    """Await ``func(item)`` for every item, at most ``concurrency`` at a time, in input order.

    Failures (``Exception``) are recorded, never raised. The run stops early when
    ``max_errors`` failures happened (runs in flight are cancelled) or when ``should_stop``
    returns a reason (checked before each item starts; runs in flight finish). Either way
    :attr:`Outcome.stopped` says why. If the run itself is cancelled (Ctrl-C), the workers
    are cancelled, ``outcome.stopped`` is set to ``"interrupted"`` and the cancellation
    propagates: pass ``outcome`` to keep what was done.
    """
    out: Outcome[T] = outcome if outcome is not None else Outcome(len(items))
    pending = iter(range(len(items)))
    workers: list[asyncio.Task[None]] = []

    def stop(reason: str, *, cancel: bool) -> None:
        if out.stopped is None:
            out.stopped = reason
        if cancel:
            current = asyncio.current_task()
            for w in workers:
                if w is not current:
                    w.cancel()

    async def worker() -> None:
        for index in pending:  # one shared iterator: items start in input order
            if out.stopped is not None:
                return
            reason = should_stop() if should_stop is not None else None
            if reason:
                stop(reason, cancel=False)
                return
            try:
                value = await func(items[index])
            except Exception as exc:
                out.errors.append((index, exc))
                out.done[index] = True
                if on_done is not None:
                    on_done(index, None, exc)
                if max_errors is not None and len(out.errors) >= max_errors:
                    first_index, first = out.errors[0]
                    stop(
                        f"max_errors={max_errors} reached ({len(out.errors)} failed); the "
                        f"first (#{first_index}) failed with {type(first).__name__}: {first}",
                        cancel=True,
                    )
                    return
                continue
            out.results[index] = value
            out.done[index] = True
            if on_done is not None:
                on_done(index, value, None)

    workers.extend(asyncio.ensure_future(worker()) for _ in range(min(concurrency, len(items))))
    try:
        await asyncio.gather(*workers, return_exceptions=True)
    except asyncio.CancelledError:
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if out.stopped is None:
            out.stopped = "interrupted"
        raise
    return out


# -- Parallel and Module.batch ------------------------------------------------------------


def _call_args(item: Any, access_examples: bool) -> tuple[tuple[Any, ...], dict[str, Any]]:
    if isinstance(item, Example):
        if not access_examples:
            return (item,), {}
        if item.input_keys is None:
            raise DsxError(
                "Got an Example without input keys: mark them with "
                "example.with_inputs('question', ...)"
            )
        return (), item.inputs().to_dict()
    if isinstance(item, Mapping):
        return (), dict(item)
    if isinstance(item, list | tuple):
        return tuple(item), {}
    return (item,), {}


class Parallel:
    """Run ``(module, input)`` pairs concurrently; results keep the input order.

    An input that is a ``dsx.Example`` is called with its inputs as keywords, a dict as
    keywords, a list or tuple as positional arguments, anything else as the one argument.

    Args:
        num_threads: how many run at once (default: ``dsx.settings.num_threads``).
        max_errors: raise :class:`BatchError` after this many failures (default:
            ``dsx.settings.max_errors``; ``None`` there means no limit).
        access_examples: call with an Example's inputs (``False``: pass the Example itself).
        return_failed_examples: return ``(results, failed_inputs, exceptions)``.
        provide_traceback: print the traceback of each failure.
        disable_progress_bar: accepted for DSPy compatibility (no bar is shown).
        timeout: seconds after which a call still running is a straggler (``0``: never).
        straggler_limit: once at most this many inputs are left, a straggler is started
            again (once) beside the first attempt, and whichever finishes first gives the
            result; the other is cancelled (a sync program's thread is left to finish, its
            result unused). As DSPy's ``Parallel`` does for a call stuck on a slow request.

    Example:
        >>> results = dsx.Parallel(num_threads=16)([(qa, ex) for ex in devset])
    """

    def __init__(
        self,
        num_threads: int | None = None,
        max_errors: int | None = None,
        access_examples: bool = True,
        return_failed_examples: bool = False,
        provide_traceback: bool | None = None,
        disable_progress_bar: bool = False,
        timeout: float = 120,
        straggler_limit: int = 3,
    ) -> None:
        if timeout < 0 or straggler_limit < 0:
            raise ValueError(
                f"Parallel(timeout={timeout!r}, straggler_limit={straggler_limit!r}): both are "
                "counts of seconds and inputs, 0 or more (timeout=0 never restarts a call)"
            )
        self.timeout = timeout
        self.straggler_limit = straggler_limit
        self.num_threads = num_threads
        self.max_errors = max_errors
        self.access_examples = access_examples
        self.return_failed_examples = return_failed_examples
        self.provide_traceback = provide_traceback
        self.disable_progress_bar = disable_progress_bar

    def __call__(self, exec_pairs: Sequence[tuple[Any, Any]]) -> Any:
        pairs = list(exec_pairs)
        return self._finish(pairs, run_coroutine_sync(lambda: self._run(pairs)))

    forward = __call__

    async def acall(self, exec_pairs: Sequence[tuple[Any, Any]]) -> Any:
        pairs = list(exec_pairs)
        return self._finish(pairs, await self._run(pairs))

    async def _run(self, pairs: list[tuple[Any, Any]]) -> Outcome[Any]:
        engine = Engine(self.num_threads or settings.num_threads)
        limit = self.max_errors if self.max_errors is not None else settings.max_errors

        left = [len(pairs)]  # inputs not finished yet

        async def call(pair: tuple[Any, Any]) -> Any:
            module, item = pair
            args, kwargs = _call_args(item, self.access_examples)
            try:
                if not self.timeout:
                    return await engine.call(module, args, kwargs)
                return await self._with_straggler(engine, module, args, kwargs, left)
            finally:
                left[0] -= 1

        try:
            return await run_concurrently(
                call, pairs, concurrency=engine.concurrency, max_errors=limit
            )
        finally:
            engine.close(wait=False)

    async def _with_straggler(
        self,
        engine: Engine,
        module: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        left: list[int],
    ) -> Any:
        """The call, started once more when it runs past ``timeout`` with few inputs left."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        attempts = {asyncio.ensure_future(engine.call(module, args, kwargs))}
        try:
            while True:
                # until the timeout, then every so often: inputs left may fall to the limit
                wait_for = started + self.timeout - loop.time()
                if wait_for <= 0:
                    wait_for = min(1.0, self.timeout)
                done, _ = await asyncio.wait(
                    attempts,
                    timeout=wait_for if len(attempts) == 1 else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if done:
                    return done.pop().result()
                if loop.time() - started >= self.timeout and left[0] <= self.straggler_limit:
                    attempts.add(asyncio.ensure_future(engine.call(module, args, kwargs)))
        finally:
            for attempt in attempts:
                attempt.cancel()

    def _finish(self, pairs: list[tuple[Any, Any]], out: Outcome[Any]) -> Any:
        errors = sorted(out.errors, key=lambda e: e[0])
        if self.provide_traceback:
            for index, exc in errors:
                tb = "".join(traceback.format_exception(exc))
                print(f"input #{index} failed:\n{tb}")
        if out.stopped is not None and errors:
            raise BatchError(f"The batch stopped: {out.stopped}") from errors[0][1]
        if self.return_failed_examples:
            return out.results, [pairs[i][1] for i, _ in errors], [e for _, e in errors]
        return out.results


def run_batch(
    module: Any,
    examples: Sequence[Any],
    *,
    num_threads: int | None,
    max_errors: int | None,
    return_failed_examples: bool,
    provide_traceback: bool,
) -> Any:
    """``Module.batch``: :class:`Parallel` over ``(module, example)`` pairs."""
    for example in examples:
        if not isinstance(example, Example | Mapping):
            raise TypeError(
                f"batch() takes Examples or dicts of inputs, got {type(example).__name__}"
            )
    runner = Parallel(
        num_threads=num_threads,
        max_errors=max_errors,
        return_failed_examples=return_failed_examples,
        provide_traceback=provide_traceback,
    )
    return runner([(module, ex) for ex in examples])
