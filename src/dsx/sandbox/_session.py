"""The session lifecycle shared by every backend: start → execute* → reset/close.

One execution is written once, as a generator in ``_exchange.py`` that yields the I/O
it needs (receive until a deadline, run a tool, call a blocking backend operation);
:meth:`Sandbox.execute` performs those steps synchronously and :meth:`Sandbox.aexecute`
performs them on the running event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import select
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterable, Mapping
from types import TracebackType
from typing import Any, ClassVar

from dsx.sandbox._exchange import (
    ExchangeMixin,
    Recv,
    RunTool,
    Send,
    Step,
    bounded_tool_call,
)
from dsx.sandbox._grants import check_grants
from dsx.sandbox._protocol import FrameReader, new_token
from dsx.sandbox._quota import guard
from dsx.sandbox._tools import Tool, call_tool_sync, dumps
from dsx.sandbox._tools import normalize_tools as _normalize_tools
from dsx.sandbox._types import (
    START_TIMEOUT,
    ExecutionResult,
    Limits,
    Mount,
    SandboxClosed,
    SandboxError,
)
from dsx.sandbox._watchdog import watch

__all__ = ["Sandbox", "ToolsArg"]

ToolsArg = Mapping[str, Callable[..., Any]] | Iterable[Callable[..., Any]] | None


class Sandbox(ExchangeMixin, ABC):
    """A session with one persistent guest Python interpreter.

    Use it as a context manager (``with`` or ``async with``), or call :meth:`start` and
    :meth:`close`. State (variables, functions, imports) persists between executions
    until :meth:`reset`, a timeout that had to kill the guest, or a crash; the result's
    ``session_reset`` says when that happened. A session runs one execution at a time.

    Args:
        tools: host callables the guest may call, by name (a mapping, or callables named
            by ``__name__``); more can be passed per execution.
        mounts: host directories granted to the guest (:class:`Mount` or a path, which
            is mounted read-only at ``/mnt/<name>``). Nothing else of the host's file
            system is visible. A directory holding host code (the Python installation,
            site-packages, dsx, the compiled-module cache) is refused with
            :class:`UnsafeGrant`.
        env: environment variables the guest sees; none of the host's are passed on.
        timeout: default seconds per execution (``DEFAULT_TIMEOUT``).
        memory_limit: bytes of memory for the guest (``DEFAULT_MEMORY_LIMIT``).
        max_output: characters of stdout/stderr kept per execution.
        max_tool_calls: tool calls allowed per execution.
        max_message_size: bytes of one protocol message.
        max_execution_bytes: bytes the guest may send in one execution (stdout, stderr
            and messages together; ``DEFAULT_MAX_EXECUTION_BYTES``); beyond them the
            interpreter is replaced.
    """

    #: The backend's name (``"wasmtime"`` or ``"docker"``).
    backend: ClassVar[str]

    def __init__(
        self,
        *,
        tools: ToolsArg = None,
        mounts: Iterable[Mount | str] = (),
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        memory_limit: int | None = None,
        max_output: int | None = None,
        max_tool_calls: int | None = None,
        max_message_size: int | None = None,
        max_execution_bytes: int | None = None,
    ) -> None:
        self.limits = Limits().replace(
            timeout=timeout,
            memory=memory_limit,
            max_output=max_output,
            max_tool_calls=max_tool_calls,
            max_message_size=max_message_size,
            max_execution_bytes=max_execution_bytes,
        )
        self.tools: dict[str, Tool] = _normalize_tools(tools)
        self.mounts: tuple[Mount, ...] = tuple(Mount.coerce(m) for m in mounts)
        check_grants(self.mounts)
        self.env: dict[str, str] = {str(k): str(v) for k, v in (env or {}).items()}
        self._started = False
        self._closed = False
        self._busy = threading.Lock()
        # The idle watchdog and the session agree through this lock: a guest is only
        # ever stopped for idle CPU while nothing runs (``_active`` is 0).
        self._idle_lock = threading.Lock()
        self._active = 0
        self._boots = 0
        self._idle_base: tuple[int, int, float] | None = None
        self._lost_state: str | None = None
        self._quota_note: str | None = None
        self._guarded = False
        self._exec_seq = 0
        self._token = ""
        self._reader: FrameReader | None = None
        self._poll: select.poll | None = None

    # -- backend hooks ---------------------------------------------------------------

    @abstractmethod
    def _boot(self, argv_tail: list[str], deadline: float) -> None:
        """Start a guest running the driver (``python`` + ``argv_tail``)."""

    @abstractmethod
    def _shutdown(self) -> None:
        """Stop the guest at once and release its resources (idempotent)."""

    @abstractmethod
    def _fds(self) -> list[int]:
        """File descriptors that become readable when the guest has something to say."""

    @abstractmethod
    def _read(self) -> tuple[bytes, bytes, bool]:
        """Without blocking: (stdout bytes, stderr bytes, guest gone)."""

    def _write_some(self, data: memoryview) -> int:
        """Write what fits of ``data`` to the guest's stdin now (0 if nothing does).

        Raises:
            OSError: the guest is gone.
        """
        raise BrokenPipeError(f"{type(self).__name__} cannot write to a guest")

    def _write_fd(self) -> int:
        """The file descriptor that becomes writable when the guest's stdin has room."""
        raise SandboxError(f"{type(self).__name__} has no guest to write to")

    def _unread_input(self) -> int:
        """Bytes sent to the guest that it has not read yet (0 where that is unknown)."""
        return 0

    def _interrupt(self) -> bool:
        """Ask the running code to stop while keeping state; False if not supported."""
        return False

    def _death_reason(self) -> tuple[str, str]:
        """(error type, message) saying why the guest stopped."""
        return "SandboxCrash", "the guest interpreter stopped unexpectedly"

    def _guest_cpu(self) -> float | None:
        """CPU seconds the guest has used since it started (``None``: not known)."""
        return None

    def _kill_guest(self) -> None:
        """Stop the guest's code now, from any thread (the session notices the death)."""

    def _file_size_limit(self) -> int | None:
        """The largest file the guest may write (the smallest quota of its grants)."""
        quotas = [m.quota for m in self.mounts if m.writable and m.quota is not None]
        return min(quotas) if quotas else None

    def _over_quota(self, mount: Mount, used: int) -> None:
        """Called by the quota guard: ``mount`` grew by ``used`` bytes, over its quota."""
        self._quota_note = (
            f"the guest grew {mount.guest_path} by {used} bytes, over its quota of "
            f"{mount.quota} bytes, and was stopped (delete files there to write again)"
        )
        self._kill_guest()

    def _why_stopped(self) -> tuple[str, str]:
        note, self._quota_note = self._quota_note, None
        return ("QuotaExceeded", note) if note else self._death_reason()

    def _driver_config(self) -> dict[str, Any]:
        return {
            "max_output": self.limits.max_output,
            "max_value": self.limits.max_message_size // 2,
        }

    # -- lifecycle -------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether a guest interpreter is running."""
        return self._started

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> Sandbox:
        """Start the guest interpreter (done on first use if not called). Idempotent."""
        if self._closed:
            raise SandboxClosed(f"this {self.backend} sandbox session is closed")
        with self._activity():
            self._start()
        return self

    def _start(self) -> None:
        if not self._started:
            check_grants(self.mounts)  # again: the cache dir may have moved since
            self._token = new_token()
            self._reader = FrameReader(
                self._token,
                max_message=self.limits.max_message_size,
                max_output=self.limits.max_output,
            )
            deadline = time.monotonic() + START_TIMEOUT
            from dsx.sandbox._protocol import driver_source

            tail = ["-c", driver_source(), self._token, json.dumps(self._driver_config())]
            try:
                self._boot(tail, deadline)
                self._poll = select.poll()
                for fd in self._fds():
                    self._poll.register(fd, select.POLLIN)
                self._await_ready(deadline)
            except BaseException:
                self._shutdown()
                raise
            self._started = True
            self._boots += 1
            watch(self)
            if not self._guarded:
                self._guarded = True
                guard(self, self.mounts)  # measured once, at the first start

    @contextlib.contextmanager
    def _activity(self) -> Generator[None, None, None]:
        with self._idle_lock:
            self._active += 1
        try:
            yield
        finally:
            with self._idle_lock:
                self._active -= 1
                self._idle_base = None

    def _idle_check(self, limit: float) -> None:
        """Stop the guest if it used over ``limit`` CPU seconds since it went idle."""
        with self._idle_lock:
            if self._active or not self._started or self._closed:
                self._idle_base = None
                return
            key = (self._boots, self._exec_seq)
        cpu = self._guest_cpu()  # unlocked: Docker asks the engine, which can take a while
        if cpu is None:
            return
        with self._idle_lock:
            if self._active or not self._started or (self._boots, self._exec_seq) != key:
                return  # an execution began (or came and went) meanwhile
            if self._idle_base is None or self._idle_base[:2] != key:
                self._idle_base = (*key, cpu)
                return
            used = cpu - self._idle_base[2]
            if used <= limit:
                return
            self._started = False
            self._shutdown()
            self._idle_base = None
            self._lost_state = (
                f"the guest used {used:.1f} s of CPU between executions (over {limit:g} s) "
                "and was stopped; this execution ran in a fresh interpreter"
            )

    def _await_ready(self, deadline: float) -> None:
        while True:
            incoming = self._recv_sync(deadline)
            if any(m.get("type") == "ready" for m in incoming.messages):
                return
            if incoming.eof or incoming.violation or time.monotonic() >= deadline:
                kind, why = self._death_reason()
                assert self._reader is not None
                err = self._reader.raw_err.take()[0].strip()[-2000:]
                raise SandboxError(
                    f"the {self.backend} sandbox did not start: {kind}: {why}"
                    + (f"\nguest stderr:\n{err}" if err else "")
                )

    def close(self) -> None:
        """Stop the guest and release everything. Idempotent."""
        self._closed = True
        self._started = False
        self._shutdown()

    def reset(self) -> None:
        """Replace the guest with a fresh interpreter: all state is gone."""
        self._started = False
        self._shutdown()
        self.start()

    async def astart(self) -> Sandbox:
        await asyncio.to_thread(self.start)
        return self

    async def areset(self) -> None:
        await asyncio.to_thread(self.reset)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Sandbox:
        return await self.astart()

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- execution -------------------------------------------------------------------

    def execute(
        self,
        code: str,
        *,
        variables: Mapping[str, Any] | None = None,
        tools: ToolsArg = None,
        timeout: float | None = None,
    ) -> ExecutionResult:
        """Run ``code`` in the session's interpreter and return what happened.

        Args:
            code: Python source. A final expression statement's value is returned.
            variables: values (JSON) bound as globals before the code runs.
            tools: extra tools for this execution (added to the session's).
            timeout: seconds for this execution (default: the session's).

        Raises:
            SandboxError: the sandbox failed on the host (errors in ``code`` do not raise).
        """
        with self._exclusive(), self._activity():
            steps = self._prepare(code, variables, tools, timeout)
            value: Any = None
            try:
                while True:
                    try:
                        step = steps.send(value)
                    except StopIteration as stop:
                        return stop.value
                    if isinstance(step, Recv):
                        value = self._recv_sync(step.deadline)
                    elif isinstance(step, Send):
                        value = self._send_sync(step)
                    elif isinstance(step, RunTool):
                        value = call_tool_sync(step.tool, step.args, step.kwargs)
                    else:
                        value = step.fn()
            except BaseException:
                self._abandon()
                raise

    async def aexecute(
        self,
        code: str,
        *,
        variables: Mapping[str, Any] | None = None,
        tools: ToolsArg = None,
        timeout: float | None = None,
    ) -> ExecutionResult:
        """:meth:`execute` on the running event loop (async tools are awaited there)."""
        with self._exclusive(), self._activity():
            if not self._started:
                await asyncio.to_thread(self._start)
            steps = self._prepare(code, variables, tools, timeout)
            value: Any = None
            try:
                while True:
                    try:
                        step = steps.send(value)
                    except StopIteration as stop:
                        return stop.value
                    if isinstance(step, Recv):
                        value = await self._recv_async(step.deadline)
                    elif isinstance(step, Send):
                        value = await self._send_async(step)
                    elif isinstance(step, RunTool):
                        value = await bounded_tool_call(step)
                    else:
                        value = await asyncio.to_thread(step.fn)
            except BaseException:
                self._abandon()
                raise

    def _exclusive(self) -> _Exclusive:
        if self._closed:
            raise SandboxClosed(f"this {self.backend} sandbox session is closed")
        if not self._busy.acquire(blocking=False):
            raise SandboxError(
                "this sandbox session is already executing code; a session runs one "
                "execution at a time (use one session per concurrent task)"
            )
        return _Exclusive(self._busy)

    def _abandon(self) -> None:
        # The host failed or was cancelled mid-execution: the guest's state is unknown.
        self._started = False
        self._shutdown()

    def _prepare(
        self,
        code: str,
        variables: Mapping[str, Any] | None,
        tools: ToolsArg,
        timeout: float | None,
    ) -> Generator[Step, Any, ExecutionResult]:
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, not {type(code).__name__}")
        toolset = {**self.tools, **_normalize_tools(tools)}
        for name in variables or {}:
            if not (isinstance(name, str) and name.isidentifier()):
                raise ValueError(f"variable name {name!r} is not a valid identifier")
        self._exec_seq += 1
        request = {
            "op": "exec",
            "id": self._exec_seq,
            "code": code,
            "vars": dict(variables or {}),
            "tools": [t.spec for t in toolset.values()],
        }
        try:
            data = (dumps(request) + "\n").encode("ascii")
        except (TypeError, ValueError) as exc:
            raise TypeError(f"variables must be JSON-serializable: {exc}") from None
        if len(data) > self.limits.max_message_size:
            raise ValueError(
                f"code and variables take {len(data)} bytes, over the sandbox's "
                f"max_message_size of {self.limits.max_message_size}"
            )
        limit = self.limits.timeout if timeout is None else float(timeout)
        if not limit > 0:
            raise ValueError(f"timeout must be > 0, got {timeout!r}")
        if not self._started:
            self._start()
        lost, self._lost_state = self._lost_state, None
        steps = self._exchange(self._exec_seq, data, toolset, limit)
        return steps if lost is None else _noting_reset(steps, lost)

    def _restart(self) -> None:
        self._started = False
        self._shutdown()
        # If this fails, the next execute tries again and raises if the backend is broken.
        with contextlib.suppress(SandboxError):
            self.start()


def _noting_reset(
    steps: Generator[Step, Any, ExecutionResult], why: str
) -> Generator[Step, Any, ExecutionResult]:
    """The execution's steps; its result says the state was lost before it began."""
    result = yield from steps
    return dataclasses.replace(result, session_reset=True, stderr=f"[dsx] {why}\n" + result.stderr)


class _Exclusive:
    """Releases the session's busy lock when the execution ends."""

    __slots__ = ("lock",)

    def __init__(self, lock: threading.Lock) -> None:
        self.lock = lock

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self.lock.release()
