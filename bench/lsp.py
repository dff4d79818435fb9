"""Language-server latency: diagnostics after a one-line edit, and completion, on a
300-line and a 5,000-line file.

Measured server-side, through the same code the server runs for each message (apply the
incremental change, re-analyse only what changed, convert to LSP diagnostics; or compute
completion items) — without JSON-RPC transport, which adds well under a millisecond.

Targets (issue 9), on the 5,000-line file: diagnostics <= 20 ms, completion <= 50 ms.
Run: `.venv/bin/python bench/lsp.py` (`--json` for machine-readable output).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from frontend import generate  # the same generated program as the front-end benchmark
from lsprotocol import types

from dsx.grammar.parser import _get_parser
from dsx.lsp import completion, diagnostics, preview
from dsx.lsp.state import Document, Session

TARGETS_MS = {"diagnostics": 20.0, "completion": 50.0}
URI = "file:///bench/lsp_bench.dsx"
REPS = 15


def _line_edit(session: Session, doc: Document, line: int, rep: int) -> None:
    """Type or delete one space at the end of ``line`` (an incremental change)."""
    codec = doc.codec(session.encoding)
    end = codec.line_end(line)
    pos = codec.position(end)
    if rep % 2 == 0:
        change = types.TextDocumentContentChangePartial(
            range=types.Range(start=pos, end=pos), text=" "
        )
    else:
        start = codec.position(end - 1)
        change = types.TextDocumentContentChangePartial(
            range=types.Range(start=start, end=pos), text=""
        )
    session.change(doc.uri, [change], rep + 2)


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _time(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(lines: int) -> dict[str, float]:
    text = generate(lines)
    session = Session(freeze_gc=True)  # as the server runs it
    doc = session.open(URI, text, 1)
    first = _time(lambda: diagnostics.document_diagnostics(session, doc))
    assert diagnostics.document_diagnostics(session, doc) == [], "the generated file is clean"
    source = text.split("\n")
    mid = len(source) // 2
    body_line = next(i for i in range(mid, len(source)) if "query   = rewrite(" in source[i])
    sig_line = next(i for i in range(mid, len(source)) if source[i].startswith("    out answer:"))
    result: dict[str, float] = {"lines": float(text.count("\n")), "open_ms": first * 1000}

    def diag_after_edit(line: int) -> float:
        samples = []
        for rep in range(REPS):
            samples.append(
                _time(
                    lambda rep=rep: (
                        _line_edit(session, doc, line, rep),
                        diagnostics.document_diagnostics(session, doc),
                    )
                )
            )
        return _median_ms(samples)

    result["diagnostics_forward_ms"] = diag_after_edit(body_line)
    result["diagnostics_signature_ms"] = diag_after_edit(sig_line)

    # Typing a new field into a signature, one keystroke at a time (most keystrokes leave
    # the block unparsable for a moment: what an editor really sends).
    typed = "\n    out extra: str"
    samples = []
    line = sig_line
    for i, ch in enumerate(typed):
        codec = doc.codec(session.encoding)
        at = codec.position(codec.line_end(line) if i == 0 else codec.line_end(line + 1))
        change = types.TextDocumentContentChangePartial(
            range=types.Range(start=at, end=at), text=ch
        )

        def keystroke(change: types.TextDocumentContentChangePartial = change, i: int = i) -> None:
            session.change(doc.uri, [change], 3000 + i)
            diagnostics.document_diagnostics(session, doc)

        samples.append(_time(keystroke))
    result["typing_signature_median_ms"] = _median_ms(samples)
    result["typing_signature_max_ms"] = max(samples) * 1000
    typed_text = doc.text
    # undo the typing
    start = doc.codec(session.encoding).position(doc.codec(session.encoding).line_end(line))
    end = doc.codec(session.encoding).position(doc.codec(session.encoding).line_end(line + 1))
    session.change(
        doc.uri,
        [types.TextDocumentContentChangePartial(range=types.Range(start=start, end=end), text="")],
        4000,
    )
    assert doc.text == text or typed_text != text

    # Completion right after a keystroke (the debounced re-check has not run yet): outputs
    # after `.` on a prediction, and inputs inside a predictor call.
    pred_line = next(i for i in range(mid, len(source)) if "pred = answer(" in source[i])
    samples_dot, samples_call = [], []
    for rep in range(REPS):
        _line_edit(session, doc, body_line, rep)
        col = len(source[pred_line]) - len(source[pred_line].lstrip())
        dot = types.Position(line=pred_line + 1, character=col)
        insert = types.TextDocumentContentChangePartial(
            range=types.Range(start=dot, end=dot), text="pred.\n" + " " * col
        )
        session.change(doc.uri, [insert], 1000 + rep)
        at_dot = types.Position(line=pred_line + 1, character=col + 5)
        samples_dot.append(_time(lambda at=at_dot: completion.complete(session, doc, at)))
        items = completion.complete(session, doc, at_dot).items
        assert {i.label for i in items} >= {"answer", "confidence", "reasoning"}, items
        # undo, then complete inside `answer(`
        start = types.Position(line=pred_line + 1, character=col)
        end = types.Position(line=pred_line + 2, character=col)
        session.change(
            doc.uri,
            [
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=start, end=end), text=""
                )
            ],
            2000 + rep,
        )
        call = source[pred_line].index("answer(") + len("answer(")
        at_call = types.Position(line=pred_line, character=call)
        samples_call.append(_time(lambda at=at_call: completion.complete(session, doc, at)))
    result["completion_dot_ms"] = _median_ms(samples_dot)
    result["completion_call_ms"] = _median_ms(samples_call)

    # The prompt preview right after an edit (dsx/renderPrompt: re-analyse, instantiate,
    # render each predictor with placeholders).
    unit = session.analyze(doc).unit
    program = unit.programs[len(unit.programs) // 2].name
    samples = []
    for rep in range(REPS // 3):
        _line_edit(session, doc, body_line, rep)
        samples.append(
            _time(
                lambda: preview.render_request(
                    session.analyze(doc).unit, {"program": program}, allow_python=False
                )
            )
        )
    result["preview_after_edit_ms"] = _median_ms(samples)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    _get_parser()  # built once per process (cached on disk)
    results = [measure(300), measure(5000)]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        "| file | open (full check) | diagnostics after a 1-line edit: in a forward body / in a signature "
        "| typing a signature field: median / worst keystroke | completion after `.` / in a call |"
    )
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['lines']:.0f} lines | {r['open_ms']:.0f} ms | "
            f"{r['diagnostics_forward_ms']:.1f} ms / {r['diagnostics_signature_ms']:.1f} ms | "
            f"{r['typing_signature_median_ms']:.1f} ms / {r['typing_signature_max_ms']:.1f} ms | "
            f"{r['completion_dot_ms']:.2f} ms / {r['completion_call_ms']:.2f} ms |"
        )
    print(
        "\nprompt preview after an edit: "
        + " / ".join(
            f"{r['preview_after_edit_ms']:.1f} ms ({r['lines']:.0f} lines)" for r in results
        )
    )
    big = results[-1]
    print(
        f"\ntargets on {big['lines']:.0f} lines: diagnostics <= {TARGETS_MS['diagnostics']:.0f} ms "
        f"(forward-body edit: {big['diagnostics_forward_ms']:.1f} ms, signature edit: "
        f"{big['diagnostics_signature_ms']:.1f} ms), completion <= "
        f"{TARGETS_MS['completion']:.0f} ms (worst: {max(big['completion_dot_ms'], big['completion_call_ms']):.2f} ms)"
    )


if __name__ == "__main__":
    main()
