"""Front-end speed: parse + check a generated 5,000-line .dsx file, and re-check it after a
one-line edit with per-block caching (what the language server does on each keystroke).

Targets (issue 4): full parse + check <= 0.3 s; re-check after a one-line edit <= 20 ms.
Issue 16 adds a last row: the same 5,000 lines followed by a 131-deep chain of nested modules
(each one's member is the one before it; the deepest calls a signature), re-checked after an
edit to that signature, which reaches every module of the chain (target <= 50 ms).
Run: `.venv/bin/python bench/frontend.py` (also part of `make bench`).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from dsx.compiler.analysis import analyze_source
from dsx.grammar.parser import BlockCache, _get_parser

UNIT = """
/// Answer questions about topic {i}.
signature Answer{i} {{
    in  context: list[str]  "may contain relevant facts"
    in  question: str
    out answer: str         "often between 1 and 5 words"
    out confidence: "low" | "medium" | "high"
}}

signature Rewrite{i} = "question -> search_query"

module Rag{i}(k: int = 3) {{
    retrieve = Retrieve(k = k)
    rewrite  = Predict(Rewrite{i})
    answer   = ChainOfThought(Answer{i})

    forward(question: str) {{
        query   = rewrite(question = question).search_query
        context = retrieve(query).passages
        if len(context) == 0 {{
            context = ["no passages for {{query}}"]
        }}
        pred = answer(context = context, question = question)
        assert pred.confidence != "low", "answer with more confidence"
        return pred
    }}
}}

program rag{i} = Rag{i}(k = 2)
"""


def generate(lines: int) -> str:
    parts, i = [], 0
    while sum(p.count("\n") for p in parts) < lines:
        parts.append(UNIT.format(i=i))
        i += 1
    return "".join(parts)


def chain(depth: int) -> str:
    """A signature and ``depth`` modules, each wrapping the one before it."""
    parts = [
        'signature Ask {\n    in  question: str\n    out answer: str  "short"\n}\n',
        "module M0 {\n    ask = Predict(Ask)\n"
        "    forward(question: str) {\n        return ask(question = question)\n    }\n}\n",
    ]
    for i in range(1, depth):
        parts.append(
            f"module M{i} {{\n    inner = M{i - 1}()\n    forward(question: str) {{\n"
            "        return inner(question = question)\n    }\n}\n"
        )
    parts.append(f"program top = M{depth - 1}()\n")
    return "".join(parts)


def recheck(text: str, marker: str, edit) -> float:
    """Median ms of re-checking ``text`` after ``edit(line, rep)`` on the line at ``marker``
    (the first one past the middle)."""
    caches: dict[str, BlockCache] = {}
    prev = analyze_source(text, "/bench/big.dsx", caches=caches)
    lines = text.split("\n")
    mid = len(lines) // 2
    line_no = next(i for i in range(mid, len(lines)) if lines[i].startswith(marker))
    original = lines[line_no]
    samples = []
    for rep in range(10):
        lines[line_no] = edit(original, rep)
        edited = "\n".join(lines)
        t = time.perf_counter()
        prev = analyze_source(edited, "/bench/big.dsx", caches=caches, previous=prev)
        samples.append(time.perf_counter() - t)
        assert prev.incremental, "the re-check fell back to a full run"
        assert not prev.errors, prev.errors[:3]
    return statistics.median(samples) * 1000


def timed(fn, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    _get_parser()  # built once per process (cached)
    print("| file | full parse + check | re-check after a 1-line edit |")
    print("|---|---|---|")
    for target in (300, 5000):
        text = generate(target)
        n_lines = text.count("\n")
        full = timed(lambda text=text: analyze_source(text, "/bench/big.dsx"), 5)
        analysis = analyze_source(text, "/bench/big.dsx")
        assert not analysis.errors, analysis.errors[:3]
        results = [
            recheck(text, marker, lambda line, rep: line.rstrip() + " " * (rep % 2))
            for marker in ("        query   = rewrite(", "    out answer: str")
        ]
        print(
            f"| {n_lines} lines | {statistics.median(full) * 1000:.0f} ms | "
            f"{results[0]:.1f} ms (in a forward body) / {results[1]:.1f} ms (in a signature) |"
        )
    text = generate(5000) + chain(131)
    full = timed(lambda: analyze_source(text, "/bench/big.dsx"), 5)
    # The description changes each time: the signature's meaning changes, not only its text.
    deep = recheck(
        text, '    out answer: str  "short"', lambda _, rep: f'    out answer: str  "short {rep}"'
    )
    print(
        f"| {text.count(chr(10))} lines, a 131-deep module chain | "
        f"{statistics.median(full) * 1000:.0f} ms | {deep:.1f} ms (in the signature the chain calls) |"
    )


if __name__ == "__main__":
    main()
