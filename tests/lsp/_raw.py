"""A raw JSON-RPC client over the server's stdio, for traffic no typed client can send
(malformed bodies, wrong types, out-of-order messages)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from ._helpers import SERVER

#: Seconds to wait for one answer; generous, a loaded CI machine is slow.
ANSWER_TIMEOUT = 30.0


class RawClient:
    """One server process; messages are plain dicts (or raw bytes for a body)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self._next_id = 0
        self.notifications: list[dict[str, Any]] = []

    @classmethod
    async def start(cls) -> RawClient:
        proc = await asyncio.create_subprocess_exec(
            *SERVER,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        return cls(proc)

    def send_body(self, body: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def send(self, message: Any) -> None:
        self.send_body(json.dumps(message).encode())

    def send_together(self, messages: list[dict[str, Any]]) -> None:
        """Write ``messages`` in one write (one pipe buffer): the server reads them all
        before it runs any queued work, as when an editor sends a burst."""
        assert self.proc.stdin is not None
        out = b""
        for message in messages:
            body = json.dumps(message).encode()
            out += b"Content-Length: %d\r\n\r\n" % len(body) + body
        self.proc.stdin.write(out)

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def request(self, method: str, params: Any = None, *, omit_params: bool = False) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
        if not omit_params:
            message["params"] = params
        self.send(message)
        return self._next_id

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    async def read(self) -> dict[str, Any]:
        """The next message from the server."""
        assert self.proc.stdout is not None
        length = None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), ANSWER_TIMEOUT)
            if not line:
                raise EOFError("the server closed its output")
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        assert length is not None
        body = await asyncio.wait_for(self.proc.stdout.readexactly(length), ANSWER_TIMEOUT)
        return json.loads(body)

    async def response(self, msg_id: int | str | None) -> dict[str, Any]:
        """The response to ``msg_id`` (``None``: one with id ``null``); notifications and
        server requests on the way are kept in :attr:`notifications`."""
        while True:
            message = await self.read()
            if "method" in message:
                self.notifications.append(message)
                continue
            if message.get("id") == msg_id:
                return message

    async def call(self, method: str, params: Any = None, **kw: Any) -> dict[str, Any]:
        return await self.response(self.request(method, params, **kw))

    async def initialize(self, root: Path) -> dict[str, Any]:
        answer = await self.call(
            "initialize",
            {
                "processId": None,
                "rootUri": root.as_uri(),
                "capabilities": {},
                "initializationOptions": {"diagnosticsDelay": 10},
            },
        )
        self.notify("initialized", {})
        return answer

    async def wait(self) -> int:
        """Close stdin and wait for the process to end; its exit status."""
        assert self.proc.stdin is not None
        if not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        return await asyncio.wait_for(self.proc.wait(), ANSWER_TIMEOUT)

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


def error_code(answer: dict[str, Any]) -> int | None:
    error = answer.get("error")
    return error.get("code") if isinstance(error, dict) else None
