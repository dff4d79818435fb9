"""The Docker backend: the same driver in a locked-down, long-lived container.

The container runs the driver as its only process (under docker-init), attached over one
socket: the host writes requests to its stdin and reads the multiplexed stdout/stderr
stream. Locked down with: no network, a read-only root with a tmpfs ``/tmp``, memory,
pids and CPU limits, all capabilities dropped, no-new-privileges, user nobody, no log
(the ``none`` logging driver: guest output never lands on the host's disk). On a
timeout the code is interrupted (SIGINT, state kept); if it does not stop within
``INTERRUPT_GRACE`` the container is killed and replaced. Containers never outlive
their host (labels, reaping, ``auto_remove``: see ``_docker_life.py``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
import weakref
from typing import Any

from dsx.sandbox._docker_life import labels, reap_orphans, stop_later
from dsx.sandbox._session import Sandbox, ToolsArg
from dsx.sandbox._types import SandboxError, SandboxUnavailable

__all__ = ["DEFAULT_IMAGE", "DockerSandbox", "docker_client", "missing_image_message"]

#: The image ``dsx sandbox build-image`` builds (Debian bookworm's python3, nothing else).
DEFAULT_IMAGE = "dsx-sandbox-python:latest"
#: Processes (threads included) the guest may have.
DEFAULT_PIDS_LIMIT = 64
#: CPUs the guest may use.
DEFAULT_CPUS = 1.0
#: Size of the writable ``/tmp`` (counted against the memory limit too).
DEFAULT_TMPFS_SIZE = 64 * 1024 * 1024
#: The unprivileged user the guest runs as (nobody:nogroup).
GUEST_USER = "65534:65534"
_HEADER = struct.Struct(">BxxxI")


def docker_client() -> Any:
    """A client for the engine the environment points at, or :class:`SandboxUnavailable`."""
    try:
        import docker
    except ImportError:
        raise SandboxUnavailable(
            "the Docker sandbox needs the `docker` package, which is not installed. "
            "Install it with: pip install 'dsx[sandbox]'"
        ) from None
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except Exception as exc:
        raise SandboxUnavailable(
            f"no Docker engine answered at {where} ({type(exc).__name__}: {exc}). Start one "
            "(Docker Desktop, `sudo systemctl start docker`, or as root on Debian: "
            "`apt-get install -y docker.io && dockerd --iptables=false --ip-masq=false "
            "--bridge=none &`), or set DOCKER_HOST to a running engine"
        ) from None
    return client


def missing_image_message(image: str) -> str:
    return (
        f"the Docker image {image!r} is not in the engine. Build it locally (no registry "
        "needed; root and debootstrap required) with: dsx sandbox build-image"
        + ("" if image == DEFAULT_IMAGE else f" --name {image}")
        + " — or pass image= any image that has python3 (for example python:3.12-slim, "
        "where a registry is reachable: docker pull python:3.12-slim)"
    )


class _Demux:
    """Splits Docker's multiplexed attach stream (8-byte frame headers) into stdout/stderr."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._stream = 0
        self._left = 0

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        self._buf += data
        out, err = bytearray(), bytearray()
        while self._buf:
            if self._left == 0:
                if len(self._buf) < _HEADER.size:
                    break
                self._stream, self._left = _HEADER.unpack_from(self._buf)
                del self._buf[: _HEADER.size]
                continue
            part = self._buf[: self._left]
            del self._buf[: len(part)]
            self._left -= len(part)
            (err if self._stream == 2 else out).extend(part)
        return bytes(out), bytes(err)


class _Container:
    """One running container and its attach socket."""

    def __init__(self, client: Any, container_id: str, sock: Any) -> None:
        self.client = client
        self.id = container_id
        self.response_sock = sock  # keeps the HTTP response (and so the socket) alive
        self.sock: socket.socket = sock._sock
        self.sock.setblocking(False)
        self.demux = _Demux()
        self.eof = False
        self.removed = False

    def remove(self) -> None:
        """Hang up (the driver exits), then kill and remove it off the caller's path."""
        if self.removed:
            return
        self.removed = True
        # shutdown, not only close: the HTTP response still holds the descriptor, and an
        # attach socket left open makes the engine block writing a flooding guest's
        # output to it, holding the container's lock (a 30-60 s hang for kill/inspect).
        with contextlib.suppress(Exception):
            self.sock.shutdown(socket.SHUT_RDWR)
        for closable in (self.sock, self.response_sock):
            with contextlib.suppress(Exception):
                closable.close()
        stop_later(self.client, self.id)


class DockerSandbox(Sandbox):
    """A session whose guest interpreter runs in a locked-down Docker container.

    Takes the options of :class:`~dsx.sandbox.Sandbox`, plus:

    Args:
        image: an image with ``python3`` (default :data:`DEFAULT_IMAGE`, built by
            ``dsx sandbox build-image``).
        cpus: CPUs the guest may use.
        pids_limit: processes and threads the guest may have.
        tmpfs_size: bytes of the writable ``/tmp``.
        client: a ``docker.DockerClient`` (default: from the environment).
    """

    backend = "docker"

    def __init__(
        self,
        *,
        image: str = DEFAULT_IMAGE,
        cpus: float = DEFAULT_CPUS,
        pids_limit: int = DEFAULT_PIDS_LIMIT,
        tmpfs_size: int = DEFAULT_TMPFS_SIZE,
        client: Any = None,
        tools: ToolsArg = None,
        mounts: Any = (),
        env: Any = None,
        timeout: float | None = None,
        memory_limit: int | None = None,
        max_output: int | None = None,
        max_tool_calls: int | None = None,
        max_message_size: int | None = None,
        max_execution_bytes: int | None = None,
    ) -> None:
        super().__init__(
            tools=tools,
            mounts=mounts,
            env=env,
            timeout=timeout,
            memory_limit=memory_limit,
            max_output=max_output,
            max_tool_calls=max_tool_calls,
            max_message_size=max_message_size,
            max_execution_bytes=max_execution_bytes,
        )
        self.image = image
        self.cpus = cpus
        self.pids_limit = pids_limit
        self.tmpfs_size = tmpfs_size
        self._client = client
        self._container: _Container | None = None
        self._finalizer: Any = None

    def _driver_config(self) -> dict[str, Any]:
        # RLIMIT_AS turns a memory bomb into a MemoryError inside the guest; the cgroup
        # limit (memory plus /tmp) stays the hard stop for everything else.
        return {
            **super()._driver_config(),
            "rlimit_as": self.limits.memory,
            "signals": True,
            "reap": True,  # kill every other process after each execution
            "exit_on_hangup": True,
        }

    def _boot(self, argv_tail: list[str], deadline: float) -> None:
        import docker.errors
        import docker.types

        client = self._client = self._client or docker_client()
        try:
            client.images.get(self.image)
        except docker.errors.ImageNotFound:
            raise SandboxUnavailable(missing_image_message(self.image)) from None
        reap_orphans(client)  # once per process: containers of hosts that died
        api = client.api
        cgroup_memory = self.limits.memory + self.tmpfs_size
        host_config = api.create_host_config(
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={self.tmpfs_size},mode=1777"},
            mem_limit=cgroup_memory,
            memswap_limit=cgroup_memory,
            pids_limit=self.pids_limit,
            nano_cpus=int(self.cpus * 1e9),
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            init=True,
            ipc_mode="private",
            auto_remove=True,
            log_config={"type": "none"},
            ulimits=[
                docker.types.Ulimit(name="fsize", soft=size, hard=size)
                for size in [self._file_size_limit()]
                if size is not None
            ],
            binds={
                m.host_path: {"bind": m.guest_path, "mode": "rw" if m.writable else "ro"}
                for m in self.mounts
            },
        )
        created = api.create_container(
            self.image,
            command=["python3", "-I", "-S", "-B", *argv_tail],
            user=GUEST_USER,
            working_dir="/tmp",
            environment=dict(self.env),
            stdin_open=True,
            tty=False,
            network_disabled=True,
            labels=labels(),
            host_config=host_config,
        )
        container_id = created["Id"]
        try:
            sock = api.attach_socket(
                container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
            self._container = _Container(client, container_id, sock)
            self._finalizer = weakref.finalize(self, self._container.remove)
            api.start(container_id)
        except Exception as exc:
            stop_later(client, container_id)
            raise SandboxError(f"could not start the sandbox container: {exc}") from exc

    def _shutdown(self) -> None:
        if self._finalizer is not None:
            self._finalizer()
        self._finalizer = None
        self._container = None

    def _require(self) -> _Container:
        if self._container is None:
            raise SandboxError("the docker guest is not running")
        return self._container

    def _fds(self) -> list[int]:
        return [self._require().sock.fileno()]

    def _read(self) -> tuple[bytes, bytes, bool]:
        box = self._require()
        chunks = []
        while not box.eof:
            try:
                chunk = box.sock.recv(1 << 20)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                box.eof = True
                break
            if not chunk:
                box.eof = True
                break
            chunks.append(chunk)
        out, err = box.demux.feed(b"".join(chunks)) if chunks else (b"", b"")
        return out, err, box.eof and not out

    def _write_some(self, data: memoryview) -> int:
        try:
            return self._require().sock.send(data)
        except (BlockingIOError, InterruptedError):
            return 0

    def _write_fd(self) -> int:
        return self._require().sock.fileno()

    def _interrupt(self) -> bool:
        box = self._container
        if box is None:
            return False
        try:
            box.client.api.kill(box.id, signal="SIGINT")
        except Exception:
            return False
        return True

    def _kill_guest(self) -> None:
        box = self._container
        if box is not None:
            with contextlib.suppress(Exception):
                box.client.api.kill(box.id)

    def _guest_cpu(self) -> float | None:
        box = self._container
        if box is None:
            return None
        try:
            stats = box.client.api.stats(box.id, stream=False, one_shot=True)
            return float(stats["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9
        except Exception:
            return None

    def _death_reason(self) -> tuple[str, str]:
        box = self._container
        if box is None:
            return "SandboxCrash", "the container is gone"
        mib = self.limits.memory // (1024 * 1024)
        gone = (
            "SandboxCrash",
            "the container stopped and the engine removed it (it may have run out of "
            f"memory: limit {mib} MiB)",
        )
        try:
            state = box.client.api.inspect_container(box.id)["State"]
            for _ in range(20):  # the stream can end a moment before the state says so
                if not state.get("Running"):
                    break
                time.sleep(0.05)
                state = box.client.api.inspect_container(box.id)["State"]
        except Exception:  # auto_remove was quicker
            return gone
        if state.get("OOMKilled"):
            return "MemoryError", f"the guest ran out of memory (limit {mib} MiB) and was killed"
        code = state.get("ExitCode")
        return "SystemExit", f"the guest interpreter exited with status {code}"
