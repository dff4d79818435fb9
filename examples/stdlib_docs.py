"""A corpus every machine has: the docstrings of Python standard-library functions.

Used by ``examples/docs_qa.dsx`` (questions about which function does what, answered from
retrieved documentation) and by ``make demo``. Each passage is one public function of a
fixed list of modules: ``"math.gcd(*integers): Greatest Common Divisor."``, its id the
qualified name. The corpus is built from the running interpreter's own modules, so it
needs no download and no licence beyond Python's; the index embeds it with the offline
MiniLM model (``dsx.Embedder.local``), cached in the dsx cache after the first run.
"""

from __future__ import annotations

import importlib
import inspect
import re
import threading
from typing import Any

import dsx

MODULES = [
    "base64",
    "bisect",
    "calendar",
    "difflib",
    "fnmatch",
    "functools",
    "glob",
    "gzip",
    "hashlib",
    "heapq",
    "html",
    "itertools",
    "json",
    "math",
    "os.path",
    "random",
    "re",
    "shlex",
    "shutil",
    "statistics",
    "string",
    "textwrap",
    "unicodedata",
    "urllib.parse",
    "uuid",
    "zlib",
]


def _summary(doc: str) -> str:
    """The docstring's first paragraph on one line."""
    first = doc.strip().split("\n\n", 1)[0]
    return " ".join(first.split())


def _signature(fn: Any) -> str:
    """The parameters, with default values that are objects shown by name only (their repr
    holds a memory address, which would make the text differ between runs)."""
    try:
        text = str(inspect.signature(fn))
    except (TypeError, ValueError):
        return "(...)"
    return re.sub(r"<(?:built-in )?(?:function|method) ([\w.]+)[^>]*>", r"\1", text)


def corpus() -> list[dict[str, str]]:
    """One passage per documented public function, sorted by qualified name."""
    seen: dict[str, dict[str, str]] = {}
    for name in MODULES:
        module = importlib.import_module(name)
        for attr in dir(module):
            fn = getattr(module, attr)
            callable_kind = (
                inspect.isfunction(fn)
                or inspect.isbuiltin(fn)
                or inspect.ismethod(fn)  # random.choice & co. are a Random's bound methods
                or (name == "itertools" and inspect.isclass(fn))  # itertools.chain & co.
            )
            if attr.startswith("_") or not callable_kind:
                continue
            home = str(getattr(fn, "__module__", None) or name).split(".")[0]
            if home not in (name.split(".")[0], "posixpath", "genericpath", "_" + name):
                continue  # imported from another module
            doc = _summary(inspect.getdoc(fn) or "")
            if len(doc) < 12:
                continue
            qualified = f"{name}.{attr}"
            seen[qualified] = {"id": qualified, "text": f"{qualified}{_signature(fn)}: {doc}"}
    return [seen[k] for k in sorted(seen)]


_lock = threading.Lock()
_index: Any = None


def index(k: int = 3) -> Any:
    """The embeddings index over :func:`corpus` (built once per process)."""
    global _index
    with _lock:
        if _index is None:
            from dsx.retrievers import Embeddings

            docs = corpus()
            _index = Embeddings(
                [d["text"] for d in docs],
                dsx.Embedder.local(cache=True),
                k=k,
                ids=[d["id"] for d in docs],
            )
    return _index


def search(query: str, k: int = 3) -> list[Any]:
    """The ``k`` passages of the corpus nearest the query."""
    return index(k).search(query, k=k)


def same_function(example: Any, pred: Any, trace: Any = None) -> bool:
    """The metric: the answer names the expected function. Its first dotted name counts
    (``math.sqrt(x, /): ...`` is ``math.sqrt``), and ``gcd`` counts as ``math.gcd``."""
    want = str(example.function).strip().lower()
    found = re.search(r"[a-z_][\w.]*", str(pred.function).lower())
    got = found.group(0).rstrip(".") if found else ""
    return got == want or (got != "" and want.endswith("." + got))
