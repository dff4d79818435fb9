"""Running a module over many inputs concurrently on one asyncio event loop."""

from __future__ import annotations

import asyncio
import threading
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from dsx.errors import DsxError
from dsx.runtime.example import Example
from dsx.runtime.settings import settings

__all__ = ["BatchError", "run_batch", "run_coroutine_sync", "run_concurrently"]

T = TypeVar("T")


class BatchError(DsxError, RuntimeError):
    """A batch stopped because ``max_errors`` examples failed."""


def run_coroutine_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even if an event loop is running here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())  # type: ignore[arg-type]
    # Called from inside a running loop (e.g. a notebook): use a private loop in a thread.
    import contextvars

    ctx = contextvars.copy_context()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = ctx.run(asyncio.run, factory())  # type: ignore[arg-type]
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="dsx-batch")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


async def run_concurrently(
    func: Callable[[Any], Awaitable[T]],
    items: Sequence[Any],
    *,
    concurrency: int,
    max_errors: int | None = None,
) -> tuple[list[T | None], list[tuple[int, BaseException]]]:
    """Await ``func(item)`` for every item, at most ``concurrency`` at a time.

    Returns the results in input order (``None`` where it failed) and the failures as
    ``(index, exception)``. Once ``max_errors`` failures happened, pending items are
    cancelled and :class:`BatchError` is raised.
    """
    sem = asyncio.Semaphore(max(1, concurrency))
    results: list[T | None] = [None] * len(items)
    errors: list[tuple[int, BaseException]] = []
    stop = asyncio.Event()

    async def one(index: int, item: Any) -> None:
        async with sem:
            if stop.is_set():
                return
            try:
                results[index] = await func(item)
            except Exception as exc:
                errors.append((index, exc))
                if max_errors is not None and len(errors) >= max_errors:
                    stop.set()

    tasks = [asyncio.ensure_future(one(i, item)) for i, item in enumerate(items)]
    await asyncio.gather(*tasks)
    if stop.is_set():
        index, first = errors[0]
        raise BatchError(
            f"Stopped after {len(errors)} failed example(s) (max_errors={max_errors}); "
            f"the first (#{index}) failed with {type(first).__name__}: {first}"
        ) from first
    errors.sort(key=lambda e: e[0])
    return results, errors


def _inputs_of(example: Any) -> Mapping[str, Any]:
    if isinstance(example, Example):
        if example.input_keys is None:
            raise DsxError(
                "batch() got an Example without input keys: mark them with "
                "example.with_inputs('question', ...)"
            )
        return example.inputs().to_dict()
    if isinstance(example, Mapping):
        return example
    raise TypeError(f"batch() takes Examples or dicts of inputs, got {type(example).__name__}")


def run_batch(
    module: Any,
    examples: Sequence[Any],
    *,
    num_threads: int | None,
    max_errors: int | None,
    return_failed_examples: bool,
    provide_traceback: bool,
) -> Any:
    concurrency = num_threads or settings.num_threads
    limit = max_errors if max_errors is not None else settings.max_errors
    examples = list(examples)

    async def call(example: Any) -> Any:
        return await module.acall(**_inputs_of(example))

    results, errors = run_coroutine_sync(
        lambda: run_concurrently(call, examples, concurrency=concurrency, max_errors=limit)
    )
    if provide_traceback:
        for index, exc in errors:
            tb = "".join(traceback.format_exception(exc))
            print(f"example #{index} failed:\n{tb}")
    if return_failed_examples:
        return results, [examples[i] for i, _ in errors], [e for _, e in errors]
    return results
