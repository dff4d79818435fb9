"""Rename's error check re-analyses the renamed text reusing the current analysis's parsed
blocks (their offsets move with the edits before them): afterwards the live analysis must
be exactly as it was."""

from __future__ import annotations

from dsx.compiler.analysis import analyze_source
from dsx.lsp import diagnostics, rename
from dsx.lsp.state import Session

from ._helpers import pos

TEXT = """\
signature QA {
    in  question: str
    out answer: str
}

module Bot {
    qa = Predict(QA)

    forward(question: str) {
        pred = qa(question = question)
        return pred
    }
}

program bot = Bot()

signature Unused {
    in  a: str
    out b: str
}
"""


def _refs(analysis):
    return [(r.key, r.span.start, r.span.end) for r in analysis.references]


def test_the_rename_check_leaves_the_live_analysis_as_it_was():
    session = Session()
    doc = session.open("file:///tmp/dsx-rename-check/a.dsx", TEXT, 1)
    before = diagnostics.document_diagnostics(session, doc)
    # A longer name: every block after the signature moves in the checked text.
    edit = rename.rename(session, doc, pos(TEXT, "QA {"), "QuestionAnswering")
    assert edit is not None and len(edit.changes[doc.uri]) == 2
    analysis = session.analyze(doc)
    fresh = analyze_source(TEXT, doc.path)
    assert _refs(analysis) == _refs(fresh)
    assert [(s.key, s.span.start, s.span.end) for s in analysis.symbols.values()] == [
        (s.key, s.span.start, s.span.end) for s in fresh.symbols.values()
    ]
    assert diagnostics.document_diagnostics(session, doc) == before
