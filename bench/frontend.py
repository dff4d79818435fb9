"""Front-end speed: parse + check a generated 5,000-line .dsx file, and re-check it after a
one-line edit with per-block caching (what the language server does on each keystroke).

Targets (issue 4): full parse + check <= 0.3 s; re-check after a one-line edit <= 20 ms.
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
        results = []
        for marker in ("        query   = rewrite(", "    out answer: str"):
            caches: dict[str, BlockCache] = {}
            prev = analyze_source(text, "/bench/big.dsx", caches=caches)
            lines = text.split("\n")
            mid = len(lines) // 2
            line_no = next(i for i in range(mid, len(lines)) if lines[i].startswith(marker))
            samples = []
            for rep in range(10):
                lines[line_no] = lines[line_no].rstrip() + (" " * (rep % 2))
                edited = "\n".join(lines)
                t = time.perf_counter()
                prev = analyze_source(edited, "/bench/big.dsx", caches=caches, previous=prev)
                samples.append(time.perf_counter() - t)
            results.append(statistics.median(samples) * 1000)
        print(
            f"| {n_lines} lines | {statistics.median(full) * 1000:.0f} ms | "
            f"{results[0]:.1f} ms (in a forward body) / {results[1]:.1f} ms (in a signature) |"
        )


if __name__ == "__main__":
    main()
