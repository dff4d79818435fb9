"""``dsx index DATA --into ENGINE:PATH``: embed a corpus into a retriever's index.

``add_index_command(subparsers)`` adds the command to the ``dsx`` CLI. Targets:

* ``qdrant:DIR/COLLECTION`` — Qdrant's embedded local mode in ``DIR`` (a ``QdrantRM``);
* ``chroma:DIR/COLLECTION`` — a persistent Chroma collection in ``DIR`` (a ``ChromadbRM``);
* ``faiss:DIR`` (or ``embeddings:DIR``) — a saved :class:`~dsx.retrievers.Embeddings`
  index (FAISS is chosen for large corpora, NumPy below the threshold).

Both are resumable and idempotent: passages already indexed with the same id, text and
metadata are not embedded again, so re-running after an interruption or an edit of a few
lines costs only what changed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["add_index_command", "read_corpus"]

_TEXT_KEYS = ("text", "long_text", "content", "document")


def add_index_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``index`` to an argparse subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "index",
        help="embed a corpus (JSONL or text) into a retrieval index",
        description=(
            "Embed the passages of DATA (JSON lines with a text field, or a .txt file with "
            "one passage per line) into an index that dsx.retrievers can search. Re-running "
            "skips passages already indexed unchanged."
        ),
    )
    parser.add_argument("data", help="a .jsonl file (one object per line) or a .txt file")
    parser.add_argument(
        "--into",
        required=True,
        metavar="ENGINE:PATH",
        help="qdrant:DIR/COLLECTION (embedded Qdrant), chroma:DIR/COLLECTION (persistent "
        "Chroma) or faiss:DIR (a saved Embeddings index)",
    )
    parser.add_argument(
        "--embedder",
        default="local:all-MiniLM-L6-v2",
        help="a dsx.Embedder model (default: the offline local:all-MiniLM-L6-v2)",
    )
    parser.add_argument(
        "--text-field",
        default=None,
        help="the JSON field with the text (default: the first of "
        + ", ".join(_TEXT_KEYS)
        + " that a line has)",
    )
    parser.add_argument("--id-field", default="id", help="the JSON field with the id (default: id)")
    parser.add_argument(
        "--batch-size", type=int, default=64, help="passages per embedder call (default: 64)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.set_defaults(func=_cmd_index)
    return parser


def read_corpus(
    path: Path, *, text_field: str | None = None, id_field: str = "id"
) -> tuple[list[str], list[Any] | None, list[dict[str, Any]]]:
    """Texts, ids (``None`` when no line has one) and metadata from a JSONL or text file."""
    texts: list[str] = []
    ids: list[Any] = []
    metadata: list[dict[str, Any]] = []
    for lineno, record in _records(path):
        if isinstance(record, str):
            texts.append(record)
            ids.append(None)
            metadata.append({})
            continue
        keys = (text_field,) if text_field else _TEXT_KEYS
        key = next((k for k in keys if isinstance(record.get(k), str)), None)
        if key is None:
            want = text_field or " / ".join(_TEXT_KEYS)
            raise ValueError(f"{path}:{lineno}: no text field ({want}) in {str(record)[:80]}")
        texts.append(record.pop(key))
        ids.append(record.pop(id_field, None))
        metadata.append(record)
    if not texts:
        raise ValueError(f"{path}: no passages to index")
    if all(i is None for i in ids):
        return texts, None, metadata
    missing = next((n for n, i in enumerate(ids, 1) if i is None), None)
    if missing is not None:
        raise ValueError(f"{path}: passage {missing} has no {id_field!r} while others do")
    if len(set(map(repr, ids))) != len(ids):
        raise ValueError(f"{path}: ids are not unique")
    return texts, ids, metadata


def _records(path: Path) -> Iterator[tuple[int, Any]]:
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            if path.suffix == ".txt":
                yield lineno, line.rstrip("\n")
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: not JSON ({exc})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object")
            yield lineno, record


def _cmd_index(args: argparse.Namespace) -> int:
    from dsx.runtime._progress import Progress
    from dsx.runtime.embedder import Embedder

    engine, _, target = args.into.partition(":")
    if engine not in ("qdrant", "chroma", "faiss", "embeddings") or not target:
        print(
            f"dsx index: --into {args.into!r}: expected qdrant:DIR/COLLECTION, "
            "chroma:DIR/COLLECTION or faiss:DIR",
            file=sys.stderr,
        )
        return 2
    try:
        texts, ids, metadata = read_corpus(
            Path(args.data), text_field=args.text_field, id_field=args.id_field
        )
    except (OSError, ValueError) as exc:
        print(f"dsx index: {exc}", file=sys.stderr)
        return 2
    embedder = Embedder(args.embedder, batch_size=args.batch_size, caching=False)
    progress = Progress(len(texts), desc="indexing", display=not args.quiet)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        progress.update(done)

    start = time.perf_counter()
    try:
        if engine in ("qdrant", "chroma"):
            written, what = _into_store(
                engine, target, texts, ids, metadata, embedder, args, advance
            )
        else:
            written, what = _into_embeddings(target, texts, ids, metadata, embedder, advance)
    finally:
        progress.close()
    print(
        f"dsx index: {len(texts)} passages in {args.into} ({written} embedded, "
        f"{len(texts) - written} unchanged) in {time.perf_counter() - start:.1f} s; {what}"
    )
    return 0


def _into_store(
    engine: str,
    target: str,
    texts: list[str],
    ids: Any,
    metadata: Any,
    embedder: Any,
    args: Any,
    advance: Any,
) -> tuple[int, str]:
    directory, _, collection = target.rpartition("/")
    if not directory or not collection:
        raise ValueError(f"{engine}:{target}: expected {engine}:DIR/COLLECTION")
    rm: Any
    if engine == "qdrant":
        from dsx.retrievers.qdrant import QdrantRM

        rm = QdrantRM(collection, embedder=embedder, path=directory)
    else:
        from dsx.retrievers.chroma import ChromadbRM

        rm = ChromadbRM(collection, directory, embedder=embedder)
    try:
        written = rm.add(
            texts, ids=ids, metadata=metadata, batch_size=args.batch_size * 4, progress=advance
        )
        return written, f"collection {collection!r} holds {rm.count()} passages"
    finally:
        if hasattr(rm, "close"):
            rm.close()


def _into_embeddings(
    target: str, texts: list[str], ids: Any, metadata: Any, embedder: Any, advance: Any
) -> tuple[int, str]:
    from dsx._extras import require
    from dsx.retrievers._embed import embed_documents
    from dsx.retrievers._errors import RetrieverError
    from dsx.retrievers.embeddings import Embeddings

    np = require("retrieval", "numpy", feature="dsx index")

    keys = [repr((ids[i] if ids else i, t)) for i, t in enumerate(texts)]
    known: dict[str, Any] = {}
    try:
        old = Embeddings.from_saved(target, embedder)
        saved = json.loads((Path(target) / "config.json").read_text("utf-8"))
    except (RetrieverError, OSError, ValueError):
        old = None  # nothing (usable) there yet: embed everything
    if old is not None and saved.get("embedder") == embedder.model:  # else: other vectors
        for i, t in enumerate(old.corpus):
            known[repr((old.ids[i] if old.ids else i, t))] = old.corpus_embeddings[i]
    todo = [i for i, key in enumerate(keys) if key not in known]
    advance(len(texts) - len(todo))
    fresh = embed_documents(embedder, [texts[i] for i in todo], normalized=True, progress=advance)
    rows = dict(zip(todo, fresh, strict=True))
    vectors = np.stack([rows[i] if i in rows else known[k] for i, k in enumerate(keys)])
    rm = Embeddings(texts, embedder, ids=ids, metadata=metadata, _vectors=vectors.astype("float32"))
    rm.save(target)
    return len(todo), rm.describe()
