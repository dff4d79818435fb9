"""Request scheduling: read messages ahead, answer cheap requests at once, run expensive
ones when nothing newer is waiting, and drop work an edit made stale.

pygls reads stdin through a thread pool one line at a time, and a handler that runs
synchronously blocks that loop: on a 5,000-line file a completion sent right after an
edit waited behind the ``documentSymbol`` and ``semanticTokens`` requests the editor sent
with it. Here:

* :class:`ReadAhead` reads stdin on its own thread as bytes arrive, so every message
  already sent is parsed and dispatched before queued work runs;
* cheap requests (completion, hover, signature help, definition...) are answered as they
  are read; expensive ones (symbols, semantic tokens, folding, inlay hints, formatting,
  rename, references, code lenses) are coroutines that wait for :meth:`Scheduler.turn`:
  their turn comes once no message is waiting to be read, so a completion is never
  queued behind them;
* a queued request can be cancelled (``$/cancelRequest``: pygls cancels its task and
  answers ``-32800`` RequestCancelled), and one whose document changed while it waited
  is answered ``-32801`` ContentModified (the editor asks again for the new text).

Everything runs on the event loop's thread: the incremental analysis updates the
previous one in place, and threads would not run Python faster under the GIL; the
ordering above is what keeps the editor from waiting.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import BinaryIO

__all__ = ["ReadAhead", "Scheduler"]

#: Bytes read from stdin at a time.
CHUNK = 1 << 16
#: At most this many loop iterations are given to reading before queued work runs (a
#: message still arriving byte by byte must not hold the queue forever).
MAX_YIELDS = 50
#: Seconds queued work waits after the last bytes arrived: an editor writes a burst (the
#: edit, the outline and tokens requests, the completion) as separate writes a fraction of
#: a millisecond apart; the rest of the burst is read before queued work starts.
GRACE = 0.004


class ReadAhead:
    """An async reader over a binary stream, filled by a thread as bytes arrive.

    ``readline``/``readexactly`` return without suspending when the bytes are already
    there, so the message loop dispatches every complete message before other tasks run.
    """

    def __init__(self, stream: BinaryIO, loop: asyncio.AbstractEventLoop) -> None:
        self._stream = stream
        self._loop = loop
        self._buffer = bytearray()
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._lock = threading.Lock()
        self._in_flight = 0  # chunks handed to the loop, not yet appended
        self.last_read = 0.0  # loop time of the last bytes fed
        self._thread = threading.Thread(target=self._run, name="dsx-lsp-reader", daemon=True)
        self._thread.start()

    # ---- the reader thread ------------------------------------------------------------
    def _run(self) -> None:
        fileno = None
        try:
            fileno = self._stream.fileno()
        except (AttributeError, OSError, ValueError):
            fileno = None
        while True:
            try:
                if fileno is not None:
                    data = os.read(fileno, CHUNK)
                else:
                    read1 = getattr(self._stream, "read1", None)
                    data = read1(CHUNK) if read1 is not None else self._stream.read(1)
            except (OSError, ValueError):
                data = b""
            with self._lock:
                self._in_flight += 1
            try:
                self._loop.call_soon_threadsafe(self._feed, data)
            except RuntimeError:  # the loop is closed: the server is gone
                return
            if not data:
                return

    # ---- the loop thread --------------------------------------------------------------
    def _feed(self, data: bytes) -> None:
        with self._lock:
            self._in_flight -= 1
        self.last_read = self._loop.time()
        if data:
            self._buffer.extend(data)
        else:
            self._eof = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def pending(self) -> bool:
        """Whether bytes were read that the message loop has not consumed yet."""
        with self._lock:
            if self._in_flight:
                return True
        return bool(self._buffer) and self._waiter is None and not self._eof

    async def _wait(self) -> None:
        self._waiter = self._loop.create_future()
        await self._waiter

    async def readline(self) -> bytes:
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 1])
                del self._buffer[: end + 1]
                return line
            if self._eof:
                line = bytes(self._buffer)
                self._buffer.clear()
                return line
            await self._wait()

    async def readexactly(self, n: int) -> bytes:
        while len(self._buffer) < n and not self._eof:
            await self._wait()
        data = bytes(self._buffer[:n])
        del self._buffer[:n]
        return data


class Scheduler:
    """When queued (expensive) requests may run: after every message already read."""

    def __init__(self) -> None:
        self.reader: ReadAhead | None = None

    async def turn(self) -> None:
        """Return once no message is waiting to be read and none arrived in the last
        :data:`GRACE` seconds (always yields to the loop once)."""
        await asyncio.sleep(0)
        reader = self.reader
        if reader is None:
            return
        loop = asyncio.get_running_loop()
        for _ in range(MAX_YIELDS):
            if reader.pending:
                await asyncio.sleep(0)
                continue
            quiet = loop.time() - reader.last_read
            if quiet >= GRACE:
                return
            await asyncio.sleep(GRACE - quiet)
