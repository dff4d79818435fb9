"""``dsx.retrievers.Embeddings``: nearest passages by embedding similarity, in memory.

DSPy's ``dspy.retrievers.Embeddings(corpus, embedder, k)``, with typed passages, async
queries batched on the event loop, and the search chosen by corpus size — and said:

* fewer than ``brute_force_threshold`` passages (20,000, DSPy's default): exact search,
  one NumPy matrix product per batch of queries;
* more: a FAISS inverted-file index (``IndexIVFFlat``, inner product over normalised
  vectors, ``nprobe`` lists searched per query), when ``faiss-cpu`` is installed; without
  it, exact NumPy search with a warning that says how to get FAISS.

``save(path)`` / ``Embeddings.from_saved(path, embedder)`` keep the corpus and its vectors on
disk, so a corpus is embedded once (a FAISS index is rebuilt from them on load, in seconds).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dsx._extras import missing_message, require
from dsx._files import atomic_write
from dsx.retrievers._base import Retriever
from dsx.retrievers._embed import QueryEncoder, as_embedder, embed_documents
from dsx.retrievers._errors import RetrieverError
from dsx.retrievers._passage import Passage

if TYPE_CHECKING:
    import numpy as np

    from dsx.runtime.embedder import Embedder

__all__ = ["Embeddings"]

#: numpy is not in the core install (issue 17): a missing one names the extra.
_NUMPY = "The Embeddings retriever"

log = logging.getLogger("dsx.retrievers")

Backend = Literal["auto", "numpy", "faiss"]
_FORMAT = "dsx-embeddings-1"


class Embeddings(Retriever):
    """The ``k`` passages of ``corpus`` whose embeddings are nearest a query's.

    Args:
        corpus: the passages.
        embedder: a :class:`dsx.Embedder`, a model name (``"local:all-MiniLM-L6-v2"``) or
            a function from a list of texts to vectors.
        k: passages per query when a call does not say.
        ids: an id per passage (default: its position in ``corpus``).
        metadata: a dict per passage, returned as the passage's ``metadata``.
        brute_force_threshold: corpora this large or larger get a FAISS index.
        backend: ``"auto"`` (by size, as above), or force ``"numpy"`` / ``"faiss"``.
        normalize: compare by cosine similarity (normalise every vector).
        nprobe: FAISS lists searched per query (more: better recall, slower).
        progress: called with the number of passages embedded after each batch.

    Attributes:
        backend: the search in use, ``"numpy"`` or ``"faiss"``.

    Example:
        >>> rm = dsx.retrievers.Embeddings(docs, dsx.Embedder.local(), k=3)
        >>> rm.search("capital of France")[0].score
    """

    def __init__(
        self,
        corpus: Sequence[str],
        embedder: Any,
        k: int = 5,
        *,
        ids: Sequence[Any] | None = None,
        metadata: Sequence[Mapping[str, Any]] | None = None,
        brute_force_threshold: int = 20_000,
        backend: Backend = "auto",
        normalize: bool = True,
        nprobe: int = 32,
        progress: Callable[[int], None] | None = None,
        _vectors: np.ndarray | None = None,
    ) -> None:
        super().__init__(k=k)
        corpus = list(corpus)
        if not corpus:
            raise ValueError("Embeddings needs a non-empty corpus")
        bad = next((p for p in corpus if not isinstance(p, str)), None)
        if bad is not None:
            raise TypeError(f"corpus passages must be strings, got {type(bad).__name__}")
        for name, seq in (("ids", ids), ("metadata", metadata)):
            if seq is not None and len(seq) != len(corpus):
                raise ValueError(f"{name} has {len(seq)} entries for {len(corpus)} passages")
        if backend not in ("auto", "numpy", "faiss"):
            raise ValueError(f"backend must be 'auto', 'numpy' or 'faiss', got {backend!r}")
        self.corpus = corpus
        self.embedder: Embedder = as_embedder(embedder)
        self.ids = list(ids) if ids is not None else None
        self.metadata = [dict(m) for m in metadata] if metadata is not None else None
        self.normalize = normalize
        self.brute_force_threshold = brute_force_threshold
        self.nprobe = nprobe
        if _vectors is None:
            _vectors = embed_documents(
                self.embedder, corpus, normalized=normalize, progress=progress
            )
        self.corpus_embeddings = _vectors
        if self.corpus_embeddings.shape[0] != len(corpus):
            raise RetrieverError(
                f"{len(corpus)} passages but {self.corpus_embeddings.shape[0]} vectors"
            )
        self.backend: Literal["numpy", "faiss"] = self._choose(backend)
        self._index: Any = self._build_faiss() if self.backend == "faiss" else None
        self._encoder = QueryEncoder(
            self.embedder, normalized=normalize, dim=self.dim, where=repr(self)
        )
        log.info("%r: %s", self, self.describe())

    @property
    def dim(self) -> int:
        """The vectors' dimension."""
        return int(self.corpus_embeddings.shape[1])

    def describe(self) -> str:
        """One line saying what search is in use, and why."""
        n = len(self.corpus)
        if self.backend == "faiss":
            return (
                f"FAISS IVF index over {n} x {self.dim}-dim vectors "
                f"({self._index.nlist} lists, nprobe {self._index.nprobe})"
            )
        why = (
            f"below brute_force_threshold={self.brute_force_threshold}"
            if n < self.brute_force_threshold
            else "FAISS unavailable or not asked for"
        )
        return f"exact NumPy search over {n} x {self.dim}-dim vectors ({why})"

    def __repr__(self) -> str:
        return f"Embeddings({len(self.corpus)} passages, {self.embedder.model!r}, k={self.k})"

    # -- choosing and building the index -----------------------------------------------------
    def _choose(self, backend: Backend) -> Literal["numpy", "faiss"]:
        if backend == "numpy":
            return "numpy"
        if backend == "auto" and len(self.corpus) < self.brute_force_threshold:
            return "numpy"
        try:
            import faiss  # noqa: F401
        except ImportError:
            if backend == "faiss":
                feature = "Embeddings(backend='faiss')"
                raise RetrieverError(missing_message("retrieval", "faiss-cpu", feature)) from None
            warnings.warn(
                f"Embeddings: {len(self.corpus)} passages would get a FAISS index, but "
                "faiss-cpu is not installed; searching exactly with NumPy instead "
                "(pip install faiss-cpu, or pip install 'dsx[retrieval]', for faster queries).",
                RuntimeWarning,
                stacklevel=4,
            )
            return "numpy"
        return "faiss"

    def _build_faiss(self) -> Any:
        import faiss

        np = require("retrieval", "numpy", feature=_NUMPY)

        n, dim = self.corpus_embeddings.shape
        # ~2 sqrt(n) lists, each trained on >= 39 points (FAISS's own minimum per list).
        nlist = max(1, min(int(2 * math.sqrt(n)), n // 39))
        metric = faiss.METRIC_INNER_PRODUCT
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, metric)
        vectors = np.ascontiguousarray(self.corpus_embeddings, dtype=np.float32)
        index.train(vectors)
        index.add(vectors)
        index.nprobe = min(self.nprobe, nlist)
        return index

    # -- searching ------------------------------------------------------------------------------
    def _rank(self, queries: np.ndarray, k: int) -> list[list[Passage]]:
        np = require("retrieval", "numpy", feature=_NUMPY)

        k = min(k, len(self.corpus))
        if self._index is not None:
            scores, indices = self._index.search(np.ascontiguousarray(queries), k)
        else:
            all_scores = queries @ self.corpus_embeddings.T
            if k < len(self.corpus):
                part = np.argpartition(-all_scores, k - 1, axis=1)[:, :k]
            else:
                part = np.tile(np.arange(len(self.corpus)), (len(queries), 1))
            part_scores = np.take_along_axis(all_scores, part, axis=1)
            order = np.argsort(-part_scores, axis=1, kind="stable")
            indices = np.take_along_axis(part, order, axis=1)
            scores = np.take_along_axis(part_scores, order, axis=1)
        return [
            [
                self._passage(int(i), float(s), r)
                for r, (i, s) in enumerate(zip(row, srow, strict=True))
                if i >= 0
            ]
            for row, srow in zip(indices, scores, strict=True)
        ]

    def _passage(self, i: int, score: float, rank: int) -> Passage:
        meta: dict[str, Any] = dict(self.metadata[i]) if self.metadata else {}
        meta["rank"] = rank + 1
        meta.setdefault("index", i)
        return Passage(
            self.corpus[i], score=score, id=self.ids[i] if self.ids else i, metadata=meta
        )

    def _search_batch(self, queries: list[str], k: int) -> list[list[Passage]]:
        return self._rank(self._encoder.encode(queries), k)

    async def _asearch_batch(self, queries: list[str], k: int) -> list[list[Passage]]:
        vectors = await self._encoder.aencode(queries)
        if self._index is None and len(self.corpus) * len(queries) < 5_000_000:
            return self._rank(vectors, k)  # a small product: not worth a thread hop
        return await asyncio.to_thread(self._rank, vectors, k)

    def forward(self, query: str, k: int | None = None) -> Any:
        """DSPy's ``Embeddings.forward``: ``Prediction(passages, indices, scores)``."""
        from dsx.runtime.prediction import Prediction

        passages = self.search(query, k)
        return Prediction(
            passages=passages,
            indices=[p.metadata["index"] for p in passages],
            scores=[p.score for p in passages],
        )

    # -- on disk --------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the corpus and its vectors under the directory ``path``."""
        np = require("retrieval", "numpy", feature=_NUMPY)

        root = Path(path)
        root.mkdir(parents=True, exist_ok=True)
        config = {
            "format": _FORMAT,
            "k": self.k,
            "normalize": self.normalize,
            "backend": self.backend,
            "nprobe": self.nprobe,
            "brute_force_threshold": self.brute_force_threshold,
            "embedder": self.embedder.model,
            "corpus": self.corpus,
            "ids": self.ids,
            "metadata": self.metadata,
        }
        # Vectors first, config last: a config names a complete index.
        buffer = io.BytesIO()
        np.save(buffer, self.corpus_embeddings)
        atomic_write(root / "corpus_embeddings.npy", buffer.getvalue())
        atomic_write(root / "config.json", json.dumps(config))

    @classmethod
    def from_saved(cls, path: str | os.PathLike[str], embedder: Any) -> Embeddings:
        """Load what :meth:`save` wrote; ``embedder`` embeds new queries (the same model)."""
        np = require("retrieval", "numpy", feature=_NUMPY)

        root = Path(path)
        try:
            config = json.loads((root / "config.json").read_text("utf-8"))
            vectors = np.load(root / "corpus_embeddings.npy", allow_pickle=False)
        except FileNotFoundError as exc:
            raise RetrieverError(
                f"No saved Embeddings index at {root}: {exc.filename} is missing. Build one "
                "with Embeddings(...).save(path) or `dsx index DATA --into faiss:PATH`."
            ) from None
        except (ValueError, OSError) as exc:
            raise RetrieverError(
                f"The saved Embeddings index at {root} is unreadable ({exc}); rebuild it."
            ) from None
        if not isinstance(config, dict) or config.get("format") != _FORMAT:
            raise RetrieverError(f"{root}/config.json is not a dsx Embeddings index; rebuild it.")
        if vectors.ndim != 2 or vectors.shape[0] != len(config["corpus"]):
            raise RetrieverError(
                f"The saved Embeddings index at {root} is inconsistent ({vectors.shape[0]} "
                f"vectors for {len(config['corpus'])} passages); rebuild it."
            )
        return cls(
            config["corpus"],
            embedder,
            config["k"],
            ids=config.get("ids"),
            metadata=config.get("metadata"),
            brute_force_threshold=config["brute_force_threshold"],
            backend=config["backend"],
            normalize=config["normalize"],
            nprobe=config["nprobe"],
            _vectors=vectors,
        )
