"""``dsx.ColBERTv2``: a client for a ColBERTv2 search server, with DSPy's name and semantics.

The server's HTTP API (the one ColBERT's ``server.py`` and DSPy's hosted indexes speak):

* ``GET URL?query=...&k=...`` — or, with ``post_requests=True``, ``POST URL`` with the JSON
  body ``{"query": ..., "k": ...}`` — answers
  ``{"topk": [{"text", "pid", "rank", "score", "prob"?}, ...]}``, best first;
* an answer ``{"error": true, "message": ...}`` is the server saying no.

On top of DSPy's client: typed passages (:class:`~dsx.retrievers.Passage`), typed errors
(:mod:`dsx.retrievers`' ``Retriever*Error``), retries with backoff for what is transient
(timeouts, resets, 429/5xx, malformed JSON), answers kept in the dsx cache (memory and
disk; ``cache=False`` turns it off), an async path, and batches of queries sent
concurrently. The request logic is written once, as a sans-IO generator driven by a sync
and an async driver (CONVENTIONS.md 16).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import threading
import time
import weakref
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

from dsx.errors import RealLMCallForbidden
from dsx.retrievers._base import Retriever
from dsx.retrievers._errors import (
    RetrieverConnectionError,
    RetrieverError,
    RetrieverRequestError,
    RetrieverResponseError,
    RetrieverServerError,
    RetrieverTimeoutError,
)
from dsx.retrievers._passage import Passage

if TYPE_CHECKING:
    import httpx

__all__ = ["ColBERTv2"]

_KEY_VERSION = "dsx-colbertv2-1"
#: What a driver hands back to the core: an answer (status, body) or the transport's error.
_Reply = tuple[int, bytes] | BaseException
_Step = tuple[Literal["send"], None] | tuple[Literal["sleep"], float]


class ColBERTv2(Retriever):
    """A ColBERTv2 server's index, as a retriever.

    Args:
        url: the search endpoint (``"http://host:8893/api/search"``).
        port: appended to ``url`` as ``:port`` (DSPy's form).
        post_requests: send ``POST`` with a JSON body instead of ``GET`` with parameters.
        k: passages per query when a call does not say (DSPy's default, 10).
        timeout: seconds to connect, and seconds between two reads of the answer.
        num_retries: retries after a transient failure, with jittered exponential backoff.
        cache: keep answers in the dsx cache (:func:`dsx.configure_cache`), keyed by the
            URL, the query and ``k``.
        max_concurrency: requests in flight at once for a batch of queries.

    Example:
        >>> rm = dsx.ColBERTv2("http://20.102.90.50:2017/wiki17_abstracts")
        >>> dsx.configure(rm=rm)
        >>> dsx.Retrieve(k=3)("When was the first FIFA World Cup held?").passages
    """

    retry_base_delay: float = 0.5
    retry_max_delay: float = 8.0

    def __init__(
        self,
        url: str = "http://0.0.0.0",
        port: str | int | None = None,
        post_requests: bool = False,
        *,
        k: int = 10,
        timeout: float = 10.0,
        num_retries: int = 3,
        cache: bool = True,
        max_concurrency: int = 16,
    ) -> None:
        super().__init__(k=k)
        if num_retries < 0:
            raise ValueError(f"num_retries must be >= 0, got {num_retries}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.url = f"{url}:{port}" if port else url
        self.post_requests = post_requests
        self.timeout = timeout
        self.num_retries = num_retries
        self.cache = cache
        self.max_concurrency = max_concurrency
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._aclients = weakref.WeakKeyDictionary()

    def __call__(  # type: ignore[override]
        self, query: str, k: int | None = None, simplify: bool = False
    ) -> list[Passage] | list[str]:
        """DSPy's call: the top ``k`` passages; plain strings with ``simplify=True``."""
        passages = self.search(query, k)
        return [p.text for p in passages] if simplify else passages

    def __repr__(self) -> str:
        method = "POST" if self.post_requests else "GET"
        return f"ColBERTv2({self.url!r}, {method}, k={self.k})"

    # -- the core: one request with retries, sans IO ------------------------------------------
    def _exchange(self, query: str, k: int) -> Generator[_Step, _Reply | None, list[Passage]]:
        attempt = 0
        while True:
            reply = yield ("send", None)
            assert reply is not None
            try:
                return self._parse(reply, k)
            except RetrieverError as err:
                err.attempts = attempt + 1
                if err.retryable and attempt < self.num_retries:
                    yield ("sleep", self._backoff(attempt))
                    attempt += 1
                    continue
                raise

    def _parse(self, reply: _Reply, k: int) -> list[Passage]:
        where = repr(self)
        if isinstance(reply, BaseException):
            raise _transport_error(reply, where, self.timeout) from reply
        status, body = reply
        if status == 429 or status >= 500:
            raise RetrieverServerError(
                f"{where}: the server answered HTTP {status}: {_excerpt(body)}",
                retriever=where,
                status_code=status,
            )
        if status >= 400:
            hint = " Check the URL (and post_requests)." if status in (404, 405) else ""
            raise RetrieverRequestError(
                f"{where}: the server refused the request with HTTP {status}: "
                f"{_excerpt(body)}.{hint}",
                retriever=where,
                status_code=status,
            )
        try:
            data = json.loads(body)
        except ValueError:
            raise RetrieverResponseError(
                f"{where}: the answer is not JSON: {_excerpt(body)}",
                retriever=where,
                status_code=status,
                retryable=True,
            ) from None
        return _topk(data, k, where, status)

    def _backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.retry_max_delay, self.retry_base_delay * 2**attempt))

    # -- cache ---------------------------------------------------------------------------------
    def _key(self, query: str, k: int) -> str:
        raw = json.dumps([_KEY_VERSION, self.url, query, k], ensure_ascii=False)
        return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()

    def _cached(self, query: str, k: int) -> list[Passage] | None:
        if not self.cache:
            return None
        from dsx.runtime.cache import get_cache

        entry = get_cache().get(self._key(query, k))
        if entry is None:
            return None
        try:
            return [_passage(d) for d in json.loads(entry["outputs"][0])]
        except (ValueError, KeyError, IndexError, TypeError):
            return None  # an entry of another shape: ask the server again

    def _remember(self, query: str, k: int, passages: list[Passage]) -> None:
        if self.cache:
            from dsx.runtime.cache import get_cache

            rows = json.dumps([p.to_dict() for p in passages], ensure_ascii=False)
            get_cache().put(
                self._key(query, k),
                {"outputs": [rows], "model": f"colbertv2:{self.url}", "usage": {}, "cost": None},
            )

    # -- drivers ---------------------------------------------------------------------------------
    def _request(self, query: str, k: int) -> dict[str, Any]:
        from dsx.runtime import lm_base

        if lm_base._forbid_real_requests and not lm_base._is_loopback(self.url):
            raise RealLMCallForbidden(
                f"A real ColBERTv2 request to {self.url} was made while real requests are "
                "forbidden (dsx.testing.forbid_real_lm_requests). Point the retriever at "
                "dsx.testing.ColBERTv2Server."
            )
        payload = {"query": query, "k": k}
        if self.post_requests:
            return {"method": "POST", "url": self.url, "json": payload}
        return {"method": "GET", "url": self.url, "params": payload}

    def _search_one(self, query: str, k: int) -> list[Passage]:
        hit = self._cached(query, k)
        if hit is not None:
            return hit
        request = self._request(query, k)
        core = self._exchange(query, k)
        step = next(core)
        while True:
            reply: _Reply | None = None
            if step[0] == "send":
                try:
                    response = self._sync_client().request(**request)
                    reply = (response.status_code, response.content)
                except Exception as exc:
                    reply = exc
            else:
                time.sleep(step[1])
            try:
                step = core.send(reply)
            except StopIteration as done:
                self._remember(query, k, done.value)
                return done.value

    async def _asearch_one(self, query: str, k: int) -> list[Passage]:
        hit = self._cached(query, k)
        if hit is not None:
            return hit
        request = self._request(query, k)
        core = self._exchange(query, k)
        step = next(core)
        while True:
            reply: _Reply | None = None
            if step[0] == "send":
                try:
                    response = await self._async_client().request(**request)
                    reply = (response.status_code, response.content)
                except Exception as exc:
                    reply = exc
            else:
                await asyncio.sleep(step[1])
            try:
                step = core.send(reply)
            except StopIteration as done:
                self._remember(query, k, done.value)
                return done.value

    def _search_batch(self, queries: list[str], k: int) -> list[list[Passage]]:
        if len(queries) == 1:
            return [self._search_one(queries[0], k)]
        workers = min(self.max_concurrency, len(queries))
        with ThreadPoolExecutor(workers, thread_name_prefix="dsx-colbertv2") as pool:
            return list(pool.map(lambda q: self._search_one(q, k), queries))

    async def _asearch_batch(self, queries: list[str], k: int) -> list[list[Passage]]:
        gate = asyncio.Semaphore(self.max_concurrency)

        async def one(query: str) -> list[Passage]:
            async with gate:
                return await self._asearch_one(query, k)

        return list(await asyncio.gather(*(one(q) for q in queries)))

    # -- HTTP clients (pooled connections; an async client per event loop) ------------------
    def _limits(self) -> Any:
        import httpx

        return httpx.Limits(
            max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency
        )

    def _sync_client(self) -> httpx.Client:
        if self._client is None:
            import httpx

            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(timeout=self.timeout, limits=self._limits())
        return self._client

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            import httpx

            client = httpx.AsyncClient(timeout=self.timeout, limits=self._limits())
            self._aclients[loop] = client
        return client

    def close(self) -> None:
        """Close the pooled sync connections (async ones close with their event loop)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_lock", "_client", "_aclients"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._client = None
        self._aclients = weakref.WeakKeyDictionary()


def _excerpt(body: bytes, limit: int = 200) -> str:
    text = body.decode("utf-8", "replace").strip()
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _transport_error(exc: BaseException, where: str, timeout: float) -> RetrieverError:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return RetrieverTimeoutError(
            f"{where}: no answer within {timeout:g} s ({type(exc).__name__}). Raise "
            "ColBERTv2(timeout=...) if the server is slow.",
            retriever=where,
        )
    if isinstance(exc, httpx.TransportError):
        return RetrieverConnectionError(
            f"{where}: cannot reach the server or it dropped the connection "
            f"({type(exc).__name__}: {exc}). Is it running at that URL?",
            retriever=where,
        )
    return RetrieverError(
        f"{where}: the request failed ({type(exc).__name__}: {exc})", retriever=where
    )


def _topk(data: Any, k: int, where: str, status: int) -> list[Passage]:
    def bad(what: str, retryable: bool = False) -> RetrieverResponseError:
        return RetrieverResponseError(
            f"{where}: {what}", retriever=where, status_code=status, retryable=retryable
        )

    if not isinstance(data, dict):
        raise bad(f"expected a JSON object with 'topk', got {type(data).__name__}")
    if data.get("error"):
        raise bad(f"the server returned an error: {data.get('message', 'Unknown error')}")
    topk = data.get("topk")
    if not isinstance(topk, list):
        raise bad(f"the answer has no 'topk' list: {str(data)[:200]}")
    passages = []
    for i, item in enumerate(topk[:k]):
        if not isinstance(item, dict) or not isinstance(
            item.get("text", item.get("long_text")), str
        ):
            raise bad(f"topk[{i}] is not an object with a 'text' string: {str(item)[:120]}")
        passages.append(_passage(item))
    return passages


def _passage(item: dict[str, Any]) -> Passage:
    data = dict(item)
    text = data.pop("text", None)
    long_text = data.pop("long_text", None)
    score = data.pop("score", None)
    pid = data.pop("pid", data.pop("id", None))
    return Passage(
        text if isinstance(text, str) else str(long_text),
        score=score if isinstance(score, int | float) and not isinstance(score, bool) else None,
        id=pid,
        metadata=data,
    )
