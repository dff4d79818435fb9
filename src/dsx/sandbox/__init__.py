"""Run untrusted Python (LM-written code) isolated, with limits, state and host tools.

Two backends speak one protocol: :class:`WasmtimeSandbox` (the default; CPython for
WASI embedded in this process) and :class:`DockerSandbox` (a locked-down container).
Both are :class:`Sandbox` sessions::

    from dsx.sandbox import create_sandbox

    with create_sandbox(tools={"search": search}) as sb:
        r = sb.execute("hits = search('wasm')\\nlen(hits)")
        r.ok, r.value, r.stdout, r.error

:class:`PythonInterpreter` is the DSPy-style face for modules (``interp(code)``).
Nothing here imports wasmtime or docker until a backend is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dsx.sandbox._types import (
    DEFAULT_MAX_EXECUTION_BYTES,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_OUTPUT,
    DEFAULT_MAX_TOOL_CALLS,
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_TIMEOUT,
    INTERRUPT_GRACE,
    MAX_JSON_DEPTH,
    MAX_JSON_ELEMENTS,
    START_TIMEOUT,
    TOOL_RECORD_LIMIT,
    BackendName,
    ExecutionError,
    ExecutionResult,
    Limits,
    Mount,
    SandboxClosed,
    SandboxError,
    SandboxUnavailable,
    ToolCall,
    UnsafeGrant,
)

if TYPE_CHECKING:
    from dsx.sandbox._docker import DEFAULT_IMAGE, DockerSandbox
    from dsx.sandbox._outputs import UnsafeOutput, read_output
    from dsx.sandbox._session import Sandbox
    from dsx.sandbox._wasmtime import WasmtimeSandbox
    from dsx.sandbox.interpreter import (
        CodeExecutionError,
        CodeInterpreterError,
        FinalOutput,
        PythonInterpreter,
    )

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_MAX_EXECUTION_BYTES",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_OUTPUT",
    "DEFAULT_MAX_TOOL_CALLS",
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_TIMEOUT",
    "INTERRUPT_GRACE",
    "MAX_JSON_DEPTH",
    "MAX_JSON_ELEMENTS",
    "START_TIMEOUT",
    "TOOL_RECORD_LIMIT",
    "BackendName",
    "CodeExecutionError",
    "CodeInterpreterError",
    "DockerSandbox",
    "ExecutionError",
    "ExecutionResult",
    "FinalOutput",
    "Limits",
    "Mount",
    "PythonInterpreter",
    "Sandbox",
    "SandboxClosed",
    "SandboxError",
    "SandboxUnavailable",
    "ToolCall",
    "UnsafeGrant",
    "UnsafeOutput",
    "WasmtimeSandbox",
    "create_sandbox",
    "read_output",
]

_LAZY = {
    "Sandbox": "dsx.sandbox._session",
    "WasmtimeSandbox": "dsx.sandbox._wasmtime",
    "DockerSandbox": "dsx.sandbox._docker",
    "DEFAULT_IMAGE": "dsx.sandbox._docker",
    "UnsafeOutput": "dsx.sandbox._outputs",
    "read_output": "dsx.sandbox._outputs",
    "PythonInterpreter": "dsx.sandbox.interpreter",
    "FinalOutput": "dsx.sandbox.interpreter",
    "CodeInterpreterError": "dsx.sandbox.interpreter",
    "CodeExecutionError": "dsx.sandbox.interpreter",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dsx.sandbox' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def create_sandbox(backend: BackendName = "wasmtime", **options: Any) -> Sandbox:
    """A new (not yet started) session of ``backend``; ``options`` as for :class:`Sandbox`.

    Docker sessions also take ``image``, ``cpus``, ``pids_limit`` and ``tmpfs_size``.
    """
    if backend == "wasmtime":
        from dsx.sandbox._wasmtime import WasmtimeSandbox

        return WasmtimeSandbox(**options)
    if backend == "docker":
        from dsx.sandbox._docker import DockerSandbox

        return DockerSandbox(**options)
    raise ValueError(f"unknown sandbox backend {backend!r}; choose 'wasmtime' or 'docker'")
