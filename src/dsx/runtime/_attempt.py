"""One core, two drivers: work that runs both sync and async, written once.

The work is a generator (a *core*) that does no I/O itself. It yields what it needs done
and receives the outcome:

* :class:`Send` — perform the caller's one I/O operation (an LM request, an embeddings
  request) and send back its result, or throw in its exception;
* :class:`Sleep` — wait that many seconds (a retry's backoff);
* :class:`Call` — call a module or tool: ``target(*args, **kwargs)`` when sync,
  ``await target.acall(*args, **kwargs)`` when async;
* :class:`Do` — call the sync or the async form of some other operation (a sandbox
  execution: ``execute`` / ``aexecute``).

:func:`run_sync` and :func:`run_async` perform those steps with blocking calls or on the
running event loop and return what the core returns. The same pattern drives sandbox
executions (``dsx.sandbox._session``) and ``.dsx`` forward bodies (``dsx.runtime._interp``).

The retry policy every provider request shares lives here too: :class:`Retry` turns a
failure into an :class:`~dsx.errors.LMError` (through :func:`dsx.runtime.lm.map_error`),
counts attempts, and either yields the :class:`Sleep` before the next attempt or raises;
:class:`Backoff` holds the delays (exponential backoff with full jitter, honouring
``Retry-After``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, NoReturn

from dsx.errors import LMError

__all__ = [
    "SEND",
    "Backoff",
    "Call",
    "Core",
    "Do",
    "Retry",
    "Send",
    "Sleep",
    "Step",
    "retrying",
    "run_async",
    "run_sync",
]


@dataclass(slots=True)
class Send:
    """Perform the driver's operation once (``payload``: what the core wants sent, if the
    driver's operation needs telling)."""

    payload: Any = None


@dataclass(slots=True)
class Sleep:
    """Wait ``seconds`` before going on."""

    seconds: float


@dataclass(slots=True)
class Call:
    """Call ``target`` (a module or a tool) and send back its result."""

    target: Any
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Do:
    """Run ``sync(*args)`` when driven sync, ``await async_(*args)`` when driven async."""

    sync: Callable[..., Any]
    async_: Callable[..., Awaitable[Any]]
    args: tuple[Any, ...] = ()


Step = Send | Sleep | Call | Do
Core = Generator[Step, Any, Any]

#: The step of cores that have only one thing to send.
SEND = Send()


def run_sync(core: Core, send: Callable[[Send], Any] | None = None) -> Any:
    """Drive ``core`` with blocking calls; ``send`` performs its :class:`Send` steps."""
    try:
        step = next(core)
        while True:
            try:
                if type(step) is Send:
                    assert send is not None, "this core sends: give the driver a send function"
                    value = send(step)
                elif type(step) is Sleep:
                    time.sleep(step.seconds)
                    value = None
                elif type(step) is Call:
                    value = step.target(*step.args, **step.kwargs)
                else:
                    assert type(step) is Do
                    value = step.sync(*step.args)
            except Exception as exc:
                step = core.throw(exc)
            else:
                step = core.send(value)
    except StopIteration as done:
        return done.value


async def run_async(core: Core, send: Callable[[Send], Awaitable[Any]] | None = None) -> Any:
    """Drive ``core`` on the running event loop; ``send`` performs its :class:`Send` steps."""
    try:
        step = next(core)
        while True:
            try:
                if type(step) is Send:
                    assert send is not None, "this core sends: give the driver a send function"
                    value = await send(step)
                elif type(step) is Sleep:
                    await _sleep(step.seconds)
                    value = None
                elif type(step) is Call:
                    value = await step.target.acall(*step.args, **step.kwargs)
                else:
                    assert type(step) is Do
                    value = await step.async_(*step.args)
            except Exception as exc:
                step = core.throw(exc)
            else:
                step = core.send(value)
    except StopIteration as done:
        return done.value


async def _sleep(seconds: float) -> None:
    import asyncio  # here, not at the top: asyncio costs ~35 ms to import

    await asyncio.sleep(seconds)


# -- retrying provider requests -------------------------------------------------------------


class Backoff:
    """How long to wait between attempts; class attributes, so a subclass or a test can set
    them (``LM.retry_base_delay = 0.001``)."""

    #: First backoff step in seconds; the n-th retry waits up to ``base * 2**n``.
    retry_base_delay: float = 0.5
    #: The longest backoff between two attempts, in seconds.
    retry_max_delay: float = 20.0
    #: A ``Retry-After`` longer than this (seconds) is ignored in favour of backoff.
    max_retry_after: float = 60.0

    def _backoff(self, attempt: int, err: LMError) -> float:
        """Seconds to wait after the ``attempt``-th failure (0-based), which was ``err``."""
        if err.retry_after is not None and 0 <= err.retry_after <= self.max_retry_after:
            return err.retry_after
        # Full jitter: spreads the retries of many concurrent callers.
        return random.uniform(0, min(self.retry_max_delay, self.retry_base_delay * 2**attempt))


class Retry:
    """The retry state of one request: which attempt this is, and what to do on failure.

    Args:
        policy: the delays (an LM or an Embedder).
        model: named in the errors.
        timeout: the attempt's deadline in seconds, named in timeout errors.
        num_retries: retries after a retryable failure.
    """

    __slots__ = ("attempt", "model", "num_retries", "policy", "timeout")

    def __init__(self, policy: Backoff, model: str, timeout: Any, num_retries: int) -> None:
        self.policy = policy
        self.model = model
        self.timeout = timeout
        self.num_retries = num_retries
        self.attempt = 0  # failed attempts so far

    def failed(self, exc: Exception) -> LMError:
        """``exc`` as an :class:`LMError` with its attempt number; re-raises an exception
        that is no provider failure (a bug, a cancellation) unchanged."""
        if isinstance(exc, LMError):
            err = exc
        else:
            from dsx.runtime.lm import map_error  # lm imports this module

            mapped = map_error(exc, self.model, self.timeout)
            if mapped is None:
                raise exc
            err = mapped
        err.attempts = self.attempt + 1
        return err

    def again(self, err: LMError, exc: Exception, *, may_retry: bool = True) -> Core:
        """After ``err`` (mapped from ``exc``): yield the :class:`Sleep` before the next
        attempt, or raise ``err`` when it is not retryable or the retries are spent."""
        if err.retryable and may_retry and err.attempts <= self.num_retries:
            yield Sleep(self.policy._backoff(self.attempt, err))
            self.attempt += 1
            return
        self.give_up(err, exc)

    @staticmethod
    def give_up(err: LMError, exc: Exception) -> NoReturn:
        if err.attempts > 1:  # say how hard we tried
            err.args = (f"{err} (gave up after {err.attempts} attempts)",)
        raise err from (None if err is exc else exc)


def retrying(retry: Retry, payload: Any = None) -> Core:
    """Send until an attempt succeeds or :class:`Retry` gives up; returns the result."""
    send = SEND if payload is None else Send(payload)
    while True:
        try:
            return (yield send)
        except Exception as exc:
            yield from retry.again(retry.failed(exc), exc)
