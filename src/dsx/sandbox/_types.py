"""What a sandbox returns and raises, and its named limits.

Errors in the guest's code come back inside an :class:`ExecutionResult`; only host-side
failures raise, as :class:`SandboxError` and its subclasses.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dsx._errors_base import DsxError

__all__ = [
    "DEFAULT_MAX_EXECUTION_BYTES",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_OUTPUT",
    "DEFAULT_MAX_TOOL_CALLS",
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_TIMEOUT",
    "EXTRA_MESSAGES",
    "INTERRUPT_GRACE",
    "MAX_FRAME_ELEMENTS",
    "MAX_JSON_DEPTH",
    "MAX_JSON_ELEMENTS",
    "REPLY_STALL",
    "START_TIMEOUT",
    "TOOL_RECORD_LIMIT",
    "BackendName",
    "ExecutionError",
    "ExecutionResult",
    "Limits",
    "Mount",
    "SandboxClosed",
    "SandboxError",
    "SandboxUnavailable",
    "ToolCall",
    "UnsafeGrant",
]

BackendName = Literal["wasmtime", "docker"]

#: Wall-clock seconds one ``execute`` may run, tool calls included.
DEFAULT_TIMEOUT = 10.0
#: Bytes of memory the guest may use (Wasmtime linear memory; Docker cgroup and RLIMIT_AS).
DEFAULT_MEMORY_LIMIT = 256 * 1024 * 1024
#: Characters of stdout (and, separately, stderr) kept per execution; the rest is dropped.
DEFAULT_MAX_OUTPUT = 64 * 1024
#: Tool calls allowed per execution; further calls raise in the guest.
DEFAULT_MAX_TOOL_CALLS = 100
#: Bytes of one protocol message either way (code plus variables, a result, a tool reply).
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
#: Bytes the guest may send in one execution, everything counted (stdout and stderr,
#: protocol messages included); beyond it the interpreter is replaced.
DEFAULT_MAX_EXECUTION_BYTES = 64 * 1024 * 1024
#: Elements (values inside arrays and objects) one JSON value from the guest may have:
#: tool arguments, a result's value or SUBMIT answer. A few bytes of JSON can decode
#: into many objects (``[{}]`` is 3 bytes and about 70 of host memory), so this bounds
#: what a payload may cost the host; over it, tool arguments are refused and a value is
#: returned as its (truncated) ``repr``.
MAX_JSON_ELEMENTS = 100_000
#: Nesting depth of JSON from the guest (deeper: refused as above).
MAX_JSON_DEPTH = 100
#: Elements of one protocol message's own structure (big values travel inside it as
#: strings); a message over it is a protocol violation.
MAX_FRAME_ELEMENTS = 1_000
#: Bytes of JSON a :class:`ToolCall` record keeps of the arguments and of the result;
#: beyond it the record keeps the start of the JSON text (``truncated``).
TOOL_RECORD_LIMIT = 4096
#: Messages the guest may send in one execution beyond ``max_tool_calls`` (refused calls,
#: stale frames); one more is a protocol violation and the interpreter is replaced.
EXTRA_MESSAGES = 16
#: Seconds the guest may leave a tool reply untouched (not one byte read) before it counts
#: as not reading its replies, a protocol violation (a real driver waits for each reply).
REPLY_STALL = 2.0
#: Seconds a session may take to start (a Docker container may need a while).
START_TIMEOUT = 60.0
#: Seconds an interrupted guest (Docker: SIGINT) gets to stop before it is killed.
INTERRUPT_GRACE = 1.0


class SandboxError(DsxError, RuntimeError):
    """The sandbox itself failed on the host side (never an error in the guest's code).

    A :class:`dsx.DsxError` (from the import-free :mod:`dsx._errors_base`, the one module
    of dsx the sandbox imports) and a ``RuntimeError``.
    """


class SandboxUnavailable(SandboxError):
    """A backend cannot run here; the message says what is missing and how to get it."""


class SandboxClosed(SandboxError):
    """The session was used after :meth:`close`."""


class UnsafeGrant(SandboxError, ValueError):
    """A mount would give the guest the host's own code (or the secrets guarding it)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The hard limits of a session (see the ``DEFAULT_*`` constants)."""

    timeout: float = DEFAULT_TIMEOUT
    memory: int = DEFAULT_MEMORY_LIMIT
    max_output: int = DEFAULT_MAX_OUTPUT
    max_tool_calls: int = DEFAULT_MAX_TOOL_CALLS
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_execution_bytes: int = DEFAULT_MAX_EXECUTION_BYTES

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout!r}")
        if self.memory < 32 * 1024 * 1024:
            raise ValueError(f"memory limit must be at least 32 MiB, got {self.memory} bytes")
        if self.max_output < 0 or self.max_tool_calls < 0:
            raise ValueError("max_output and max_tool_calls must be >= 0")
        if self.max_message_size < 64 * 1024:
            raise ValueError("max_message_size must be at least 64 KiB")
        if self.max_execution_bytes < self.max_message_size:
            raise ValueError("max_execution_bytes must be at least max_message_size")

    def replace(self, **changes: Any) -> Limits:
        """A copy with ``changes`` applied (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


@dataclass(frozen=True, slots=True)
class Mount:
    """A host directory granted to the guest.

    Args:
        host_path: an existing directory on the host.
        guest_path: where the guest sees it (absolute); default ``/mnt/<name>``.
        writable: whether the guest may create, change and delete files in it.
        quota: for a writable grant, bytes by which the guest may grow it (and the
            largest file it may write); ``None``: no limit. See ``_quota.py``.
    """

    host_path: str
    guest_path: str = ""
    writable: bool = False
    quota: int | None = None

    def __post_init__(self) -> None:
        host = Path(self.host_path).expanduser().resolve()
        if not host.is_dir():
            raise ValueError(
                f"cannot grant {self.host_path!r} to the sandbox: not an existing directory "
                "(grant the directory that contains the files)"
            )
        object.__setattr__(self, "host_path", str(host))
        guest = self.guest_path or f"/mnt/{host.name or 'root'}"
        if not guest.startswith("/") or ".." in guest.split("/"):
            raise ValueError(f"guest_path must be absolute without '..', got {guest!r}")
        object.__setattr__(self, "guest_path", guest.rstrip("/") or "/")
        if self.quota is not None and (not self.writable or self.quota < 0):
            raise ValueError(
                f"quota={self.quota!r} for {self.host_path!r}: a quota is a number of bytes "
                "(>= 0) for a writable grant"
            )

    @classmethod
    def coerce(cls, value: Mount | str | os.PathLike[str]) -> Mount:
        """A :class:`Mount` from itself or a bare (read-only) path."""
        return value if isinstance(value, Mount) else cls(os.fspath(value))


@dataclass(frozen=True, slots=True)
class ExecutionError:
    """An exception raised by the guest's code (or the reason the guest stopped).

    Attributes:
        type: the exception's class name (``"ZeroDivisionError"``; ``"TimeoutError"`` for a
            timeout; ``"SandboxCrash"`` when the interpreter died).
        message: ``str()`` of the exception.
        traceback: formatted frames, innermost last; ``File "<cell N>", line L`` entries
            point into the code of the N-th ``execute`` of the session.
        line: the line in *this* execution's code where the error arose, when it did.
    """

    type: str
    message: str
    traceback: tuple[str, ...] = ()
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type

    def format(self) -> str:
        """Python-style text: ``Traceback ...`` frames then ``Type: message``."""
        head = ["Traceback (most recent call last):", *self.traceback] if self.traceback else []
        return "\n".join([*head, str(self)])


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call from the guest to a host tool.

    The record keeps the arguments and the result only up to :data:`TOOL_RECORD_LIMIT`
    bytes of JSON each (the tool itself got them whole): beyond it ``truncated`` is true,
    ``args`` holds one string, the start of the arguments' JSON text (``kwargs`` is then
    empty), and ``result`` is the start of the result's JSON text.
    """

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    ok: bool = True
    result: Any = None
    error: str | None = None
    duration: float = 0.0
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """Everything one ``execute`` produced.

    Attributes:
        ok: the code ran to the end (or called ``SUBMIT``) without an uncaught exception.
        stdout: what the code printed (at most ``max_output`` characters).
        stderr: what it wrote to stderr (same limit).
        value: the value of a final expression statement: as JSON when it is
            JSON-serializable, else its ``repr``; ``None`` when there was none.
        value_repr: ``repr`` of that value (``None`` when there was none).
        has_value: the code ended with an expression whose value is not ``None``.
        submitted: the code called ``SUBMIT(...)``.
        final: what was passed to ``SUBMIT``: one positional argument as is, keyword
            arguments as a dict, several positional ones as a list (JSON, else ``repr``).
        error: the exception that stopped the code, if any.
        timed_out: the timeout stopped the code.
        session_reset: the interpreter was restarted, so earlier state is gone.
        tool_calls: the tool calls made, in order.
        duration: wall-clock seconds on the host.
        stdout_truncated: output beyond ``max_output`` was dropped.
    """

    ok: bool
    stdout: str = ""
    stderr: str = ""
    value: Any = None
    value_repr: str | None = None
    has_value: bool = False
    submitted: bool = False
    final: Any = None
    error: ExecutionError | None = None
    timed_out: bool = False
    session_reset: bool = False
    tool_calls: tuple[ToolCall, ...] = ()
    duration: float = 0.0
    stdout_truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of every field."""
        return dataclasses.asdict(self)
