"""One execution, written once: the steps between sending code and getting its result.

:meth:`ExchangeMixin._exchange` is a generator that yields the I/O it needs — receive
until a deadline (:class:`Recv`), run a tool (:class:`RunTool`), call a blocking backend
operation (:class:`Blocking`) — so that :class:`~dsx.sandbox.Sandbox` can perform those
steps synchronously (``execute``) or on the running event loop (``aexecute``).
"""

from __future__ import annotations

import asyncio
import select
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from typing import Any

from dsx.sandbox._protocol import (
    FrameReader,
    JSONBudgetExceeded,
    ProtocolViolation,
    assemble_result,
    loads_bounded,
)
from dsx.sandbox._tools import Tool, ToolOutcome, call_tool_async, clip, dumps
from dsx.sandbox._types import (
    EXTRA_MESSAGES,
    INTERRUPT_GRACE,
    MAX_JSON_ELEMENTS,
    REPLY_STALL,
    TOOL_RECORD_LIMIT,
    ExecutionError,
    ExecutionResult,
    Limits,
    ToolCall,
)

__all__ = [
    "Blocking",
    "ExchangeMixin",
    "Incoming",
    "Recv",
    "RunTool",
    "Send",
    "Step",
    "bounded_tool_call",
    "refusal",
]


@dataclass(slots=True)
class Incoming:
    messages: list[dict[str, Any]] = field(default_factory=list)
    eof: bool = False
    violation: str | None = None


@dataclass(slots=True)
class Recv:
    deadline: float


@dataclass(slots=True)
class Send:
    """Write ``data`` to the guest; the answer is True (all written), False (the deadline
    came first: the guest is not reading) or None (the guest is gone)."""

    data: bytes
    deadline: float
    #: Seconds without a byte taken after which the guest counts as not reading.
    stall: float | None = None


@dataclass(slots=True)
class RunTool:
    tool: Tool
    args: list[Any]
    kwargs: dict[str, Any]
    deadline: float


@dataclass(slots=True)
class Blocking:
    fn: Callable[[], Any]


Step = Recv | Send | RunTool | Blocking


class ExchangeMixin:
    """The execution loop of a session (mixed into :class:`~dsx.sandbox.Sandbox`)."""

    limits: Limits
    _reader: FrameReader | None
    _poll: select.poll | None

    # Provided by the session and its backend.
    def _read(self) -> tuple[bytes, bytes, bool]:
        raise NotImplementedError

    def _fds(self) -> list[int]:
        raise NotImplementedError

    def _interrupt(self) -> bool:
        raise NotImplementedError

    def _death_reason(self) -> tuple[str, str]:
        raise NotImplementedError

    def _why_stopped(self) -> tuple[str, str]:
        raise NotImplementedError

    def _restart(self) -> None:
        raise NotImplementedError

    def _write_some(self, data: memoryview) -> int:
        raise NotImplementedError

    def _write_fd(self) -> int:
        raise NotImplementedError

    def _unread_input(self) -> int:
        raise NotImplementedError

    def _exchange(
        self, exec_id: int, data: bytes, tools: dict[str, Tool], timeout: float
    ) -> Generator[Step, Any, ExecutionResult]:
        assert self._reader is not None
        reader = self._reader
        began = time.perf_counter()
        deadline = time.monotonic() + timeout
        calls: list[ToolCall] = []
        interrupted = False
        # Every message counts, refused calls and stale frames too: a guest cannot make
        # the host parse, record and answer without bound.
        budget = self.limits.max_tool_calls + EXTRA_MESSAGES
        received = 0
        pending: deque[dict[str, Any]] = deque()
        violation: str | None = None
        eof = False
        reader.received = 0  # the per-execution byte budget starts now
        yield Send(data, deadline)  # if the guest does not take it, the deadline says so
        while True:
            if not pending and violation is None and not eof:
                incoming: Incoming = yield Recv(deadline)
                pending.extend(incoming.messages)
                violation, eof = incoming.violation, incoming.eof
            while pending and violation is None and time.monotonic() < deadline:
                msg = pending.popleft()
                received += 1
                if received > budget:
                    violation = (
                        f"the guest sent more than {budget} messages in one execution "
                        f"(max_tool_calls={self.limits.max_tool_calls} plus {EXTRA_MESSAGES})"
                    )
                    break
                if msg.get("id") != exec_id:
                    continue  # stale (from an interrupted execution) or unsolicited
                if msg["type"] == "call":
                    if self._unread_input():
                        violation = "the guest made a tool call without reading the last reply"
                        break
                    outcome = yield from self._tool_call(msg, tools, calls, deadline)
                    if outcome.timed_out:  # like an interrupt: the guest gets a moment to stop
                        interrupted = True
                        deadline = time.monotonic() + INTERRUPT_GRACE
                    reply = {"op": "reply", "id": exec_id, "seq": msg.get("seq"), **outcome.reply}
                    payload = (dumps(reply) + "\n").encode("ascii")
                    if len(payload) > self.limits.max_message_size:
                        payload = self._too_large(exec_id, msg.get("seq"))
                    # Against the real deadline: a guest that does not read is not waited for.
                    if (yield Send(payload, deadline, REPLY_STALL)) is False:
                        violation = "the guest did not read the reply to its tool call"
                        break
                elif msg["type"] == "result":
                    result = assemble_result(
                        msg,
                        reader=reader,
                        tool_calls=calls,
                        duration=time.perf_counter() - began,
                        max_output=self.limits.max_output,
                        max_elements=MAX_JSON_ELEMENTS,
                    )
                    return self._timed_out(result, timeout) if interrupted else result
            if violation is not None or (eof and not pending):
                if violation is not None:
                    kind, why = "SandboxProtocolError", violation
                else:
                    kind, why = yield Blocking(self._why_stopped)
                yield Blocking(self._restart)
                return self._failed(kind, why, calls, began, timed_out=False)
            if time.monotonic() >= deadline:
                if not interrupted:
                    interrupted = yield Blocking(self._interrupt)
                    if interrupted:
                        deadline = time.monotonic() + INTERRUPT_GRACE
                        continue
                yield Blocking(self._restart)
                msg_ = f"execution exceeded the timeout of {timeout:g} s"
                return self._failed("TimeoutError", msg_, calls, began, timed_out=True)

    def _tool_call(
        self, msg: dict[str, Any], tools: dict[str, Tool], calls: list[ToolCall], deadline: float
    ) -> Generator[Step, Any, ToolOutcome]:
        name, raw = msg.get("tool"), msg.get("args_json")
        tool = tools.get(name) if isinstance(name, str) else None
        label = name[:200] if isinstance(name, str) else "?"
        decoded: Any = None
        too_big: str | None = None
        if isinstance(raw, str):
            try:
                decoded = loads_bounded(raw, max_elements=MAX_JSON_ELEMENTS)
            except JSONBudgetExceeded as exc:
                too_big = str(exc)
            except ValueError:
                pass
        well_formed = (
            isinstance(decoded, list)
            and len(decoded) == 2
            and isinstance(decoded[0], list)
            and isinstance(decoded[1], dict)
        )
        args, kwargs = (decoded[0], decoded[1]) if well_formed else ([], {})
        if too_big is not None:
            message = f"the arguments of tool {label}() are too large to pass: {too_big}"
            outcome = refusal(label, [], {}, "ValueError", message, ["ValueError"])
        elif not well_formed:
            outcome = refusal(label, [], {}, "TypeError", "malformed tool call", [])
        elif tool is None:
            message = f"no tool named {label!r}"
            outcome = refusal(label, args, kwargs, "NameError", message, ["NameError"])
        elif len(calls) >= self.limits.max_tool_calls:
            message = (
                f"the limit of {self.limits.max_tool_calls} tool calls per execution is reached"
            )
            outcome = refusal(
                tool.name, args, kwargs, "ToolCallLimitExceeded", message, ["RuntimeError"]
            )
        else:
            outcome = yield RunTool(tool, args, {str(k): v for k, v in kwargs.items()}, deadline)
        record = outcome.record
        if isinstance(raw, str) and len(raw) > TOOL_RECORD_LIMIT:
            # Only a bounded representation stays in the result (the tool got it whole).
            record = replace(record, args=(clip(raw),), kwargs={}, truncated=True)
        calls.append(record)
        return outcome

    @staticmethod
    def _too_large(exec_id: int, seq: Any) -> bytes:
        error = {"type": "ValueError", "bases": ["ValueError"], "message": "tool result too large"}
        reply = {"op": "reply", "id": exec_id, "seq": seq, "ok": False, "error": error}
        return (dumps(reply) + "\n").encode("ascii")

    def _failed(
        self, kind: str, why: str, calls: list[ToolCall], began: float, *, timed_out: bool
    ) -> ExecutionResult:
        assert self._reader is not None
        out, out_cut = self._reader.raw.take()
        err, err_cut = self._reader.raw_err.take()
        note = "; the interpreter was restarted and earlier state is lost"
        return ExecutionResult(
            ok=False,
            stdout=out,
            stderr=err,
            error=ExecutionError(kind, why + note),
            timed_out=timed_out,
            session_reset=True,
            tool_calls=tuple(calls),
            duration=time.perf_counter() - began,
            stdout_truncated=out_cut or err_cut,
        )

    @staticmethod
    def _timed_out(result: ExecutionResult, timeout: float) -> ExecutionResult:
        tb = result.error.traceback if result.error else ()
        line = result.error.line if result.error else None
        message = f"execution exceeded the timeout of {timeout:g} s and was interrupted"
        error = ExecutionError("TimeoutError", message, tb, line)
        return replace(result, ok=False, timed_out=True, error=error)

    # -- sending ---------------------------------------------------------------------

    def _send_sync(self, step: Send) -> bool | None:
        view = memoryview(step.data)
        poller: select.poll | None = None
        deadline = step.deadline
        while True:
            try:
                written = self._write_some(view)
            except OSError:
                return None  # gone: the receive loop reports why
            view = view[written:]
            if not view:
                return True
            deadline = _moved(step, deadline, written)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if poller is None:
                poller = select.poll()
                poller.register(self._write_fd(), select.POLLOUT)
            poller.poll(max(1, int(min(remaining, 0.05) * 1000)))

    async def _send_async(self, step: Send) -> bool | None:
        """:meth:`_send_sync` without ever blocking the event loop."""
        loop = asyncio.get_running_loop()
        view = memoryview(step.data)
        deadline = step.deadline
        while True:
            try:
                written = self._write_some(view)
            except OSError:
                return None
            view = view[written:]
            if not view:
                return True
            deadline = _moved(step, deadline, written)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            ready = loop.create_future()

            def wake(fut: asyncio.Future[None] = ready) -> None:
                if not fut.done():
                    fut.set_result(None)

            fd = self._write_fd()
            loop.add_writer(fd, wake)
            timer = loop.call_later(min(remaining, 0.05), wake)
            try:
                await ready
            finally:
                timer.cancel()
                loop.remove_writer(fd)

    # -- receiving -------------------------------------------------------------------

    def _read_now(self) -> Incoming:
        assert self._reader is not None
        incoming = Incoming()
        out, err, eof = self._read()
        if err:
            self._reader.feed_stderr(err)
        try:
            if out:
                incoming.messages = self._reader.feed(out)
        except ProtocolViolation as exc:
            incoming.violation = str(exc)
        if self._reader.received > self.limits.max_execution_bytes and not incoming.violation:
            incoming.violation = (
                f"the guest sent more than {self.limits.max_execution_bytes} bytes in one "
                "execution (max_execution_bytes)"
            )
        incoming.eof = eof
        return incoming

    def _recv_sync(self, deadline: float) -> Incoming:
        while True:
            incoming = self._read_now()
            if incoming.messages or incoming.eof or incoming.violation:
                return incoming
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return incoming
            assert self._poll is not None
            self._poll.poll(max(1, int(remaining * 1000 + 0.999)))

    async def _recv_async(self, deadline: float) -> Incoming:
        loop = asyncio.get_running_loop()
        while True:
            incoming = self._read_now()
            if incoming.messages or incoming.eof or incoming.violation:
                return incoming
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return incoming
            ready = loop.create_future()

            def wake(fut: asyncio.Future[None] = ready) -> None:
                if not fut.done():
                    fut.set_result(None)

            fds = self._fds()
            for fd in fds:
                loop.add_reader(fd, wake)
            timer = loop.call_later(remaining, wake)
            try:
                await ready
            finally:
                timer.cancel()
                for fd in fds:
                    loop.remove_reader(fd)


def _moved(step: Send, deadline: float, written: int) -> float:
    """The time to give up: the step's deadline, or sooner once the guest stops reading."""
    if step.stall is None:
        return step.deadline
    if written or deadline == step.deadline:  # progress (or the first try): patience anew
        return min(step.deadline, time.monotonic() + step.stall)
    return deadline


async def bounded_tool_call(step: RunTool) -> ToolOutcome:
    """An async tool call cut off at the execution's deadline (a sync one stops waiting)."""
    remaining = step.deadline - time.monotonic()
    try:
        return await asyncio.wait_for(
            call_tool_async(step.tool, step.args, step.kwargs), max(remaining, 0.001)
        )
    except TimeoutError:
        message = f"tool {step.tool.name}() was cut off by the execution's timeout"
        outcome = refusal(
            step.tool.name, step.args, step.kwargs, "TimeoutError", message, ["TimeoutError"]
        )
        outcome.timed_out = True
        return outcome


def refusal(
    name: str, args: list[Any], kwargs: dict[str, Any], kind: str, message: str, bases: list[str]
) -> ToolOutcome:
    error = {"type": kind, "bases": bases, "message": message}
    record = ToolCall(name, tuple(args), dict(kwargs), False, None, f"{kind}: {message}", 0.0)
    return ToolOutcome({"ok": False, "error": error}, record)
