"""A real ColBERTv2-protocol search server on 127.0.0.1, for tests and demos.

:class:`ColBERTv2Server` answers ``GET ?query=&k=`` and ``POST {"query", "k"}`` the way a
ColBERT ``server.py`` does (``{"query", "topk": [{"text", "pid", "rank", "score", "prob"}],
"latency"}``), ranking its passages by term overlap weighted by IDF — no model, so it
starts in milliseconds. Injected :class:`~dsx.testing.Fault` objects reproduce what
clients must survive (5xx/429, hangs, resets, cut-off bodies, malformed JSON). It runs
``aiohttp.web`` on its own event loop in a background thread (the lifecycle it shares with
:class:`~dsx.testing.OpenAIServer`), so sync and async tests share it::

    with ColBERTv2Server(["Paris is the capital of France.", ...]) as srv:
        rm = dsx.ColBERTv2(srv.url)
        srv.inject(Fault.server_error())
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from dsx.testing._threaded_server import ThreadedServer, abort, hang_up, until_disconnected
from dsx.testing.server import Fault

__all__ = ["ColBERTv2Server", "ColBERTv2Request"]

_SUPPORTED = frozenset(
    {"status", "timeout", "malformed_json", "connection_reset", "truncated_stream"}
)
_TOKEN = re.compile(r"\w+", re.UNICODE)

#: ``search(query, k)`` returns the ``topk`` list, or a whole JSON body (a dict) to send.
Search = Callable[[str, int], Any]


@dataclass(frozen=True, slots=True)
class ColBERTv2Request:
    """One request the server received."""

    method: str
    query: str | None
    k: int | None


class ColBERTv2Server:
    """A ColBERTv2 search endpoint over ``passages`` (or a ``search`` function).

    Args:
        passages: the corpus; a passage's ``pid`` is its position.
        search: instead of ranking ``passages``: ``search(query, k)`` returning the
            ``topk`` list, or a dict sent as the whole body (``{"error": True, ...}``).
        path: the endpoint's path.
        latency: seconds to wait before each answer.
    """

    def __init__(
        self,
        passages: Sequence[str] = (),
        *,
        search: Search | None = None,
        path: str = "/api/search",
        latency: float = 0.0,
    ) -> None:
        self.passages = list(passages)
        self._search = search
        self.path = path
        self.latency = latency
        self.requests: list[ColBERTv2Request] = []
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._docs = [Counter(_tokens(p)) for p in self.passages]
        df: Counter[str] = Counter()
        for doc in self._docs:
            df.update(doc.keys())
        n = max(len(self._docs), 1)
        self._idf = {t: math.log(1 + n / c) for t, c in df.items()}
        self._server = ThreadedServer(
            self._handle, host="127.0.0.1", port=0, name="dsx-colbertv2-server"
        )

    @property
    def url(self) -> str:
        """The endpoint, ``http://127.0.0.1:PORT/api/search``."""
        return f"http://127.0.0.1:{self.port}{self.path}"

    def inject(self, *faults: Fault) -> None:
        """Queue faults; each is consumed by one later request, in order."""
        for fault in faults:
            if fault.kind not in _SUPPORTED:
                raise ValueError(f"ColBERTv2Server does not do {fault.kind!r} faults")
        with self._lock:
            self._faults.extend(faults)

    # -- ranking ------------------------------------------------------------------------------
    def rank(self, query: str, k: int) -> list[dict[str, Any]]:
        """The ``topk`` list this server answers for ``query``."""
        q = set(_tokens(query))
        scored = []
        for pid, doc in enumerate(self._docs):
            score = sum(self._idf[t] * (1 + math.log(doc[t])) for t in q if t in doc)
            scored.append((score, pid))
        scored.sort(key=lambda s: (-s[0], s[1]))
        top = scored[:k]
        z = sum(math.exp(s) for s, _ in top) or 1.0
        return [
            {
                "text": self.passages[pid],
                "pid": pid,
                "rank": rank,
                "score": round(score, 6),
                "prob": math.exp(score) / z,
            }
            for rank, (score, pid) in enumerate(top, start=1)
        ]

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The bound TCP port (0 before the first start)."""
        return self._server.port or 0

    def start(self) -> ColBERTv2Server:
        """Bind 127.0.0.1 on a free port and serve in a background thread."""
        if not self._server.running:
            self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving; requests left hanging by a ``timeout`` fault are dropped."""
        self._server.stop()

    def __enter__(self) -> ColBERTv2Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one request -------------------------------------------------------------------------
    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path != self.path:
            raise web.HTTPNotFound()
        if request.method not in ("GET", "POST"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "POST"])
        started = time.perf_counter()
        query: Any
        k: Any
        if request.method == "POST":
            try:
                body = json.loads(await request.read())
            except ValueError:
                return web.json_response({"error": True, "message": "body is not JSON"}, status=400)
            query, k = (
                (body.get("query"), body.get("k")) if isinstance(body, dict) else (None, None)
            )
        else:
            query, k = request.query.get("query"), request.query.get("k", "10")
        try:
            k = int(k)
        except (TypeError, ValueError):
            k = None
        self.requests.append(ColBERTv2Request(request.method, query, k))
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is not None:
            return await self._fault(request, fault)
        if not isinstance(query, str) or k is None or k < 1:
            return web.json_response(
                {"error": True, "message": "query (a string) and k (>= 1) are required"},
                status=400,
            )
        topk = self._search(query, k) if self._search is not None else self.rank(query, k)
        if isinstance(topk, dict):
            return web.json_response(topk)
        latency = (time.perf_counter() - started) * 1000
        return web.json_response({"query": query, "topk": topk, "latency": latency})

    async def _fault(self, request: web.BaseRequest, fault: Fault) -> web.StreamResponse:
        if fault.kind == "status":
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = str(max(0, math.ceil(fault.retry_after)))
            return web.json_response(
                {"error": True, "message": fault.message}, status=fault.status_code, headers=headers
            )
        if fault.kind == "malformed_json":
            return web.Response(text='{"topk": [{"text": ', content_type="application/json")
        if fault.kind == "timeout":
            await until_disconnected(request)  # or until stop() cancels us
            return hang_up(request, web.Response())
        if fault.kind == "truncated_stream":
            body = json.dumps({"topk": self.rank(request.query.get("query", ""), 3)}).encode()
            response = web.StreamResponse(headers={"Content-Length": str(len(body))})
            response.content_type = "application/json"
            await response.prepare(request)
            await response.write(body[: len(body) // 2])
        return abort(request)  # connection_reset, and a truncated body ends the same way


def _tokens(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(text)]
