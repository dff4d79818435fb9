"""An `lm` or `retriever` declaration used inside a forward body is a located error that
says where it belongs (issue 16: `answer(question = q, lm = fast)` in a forward body)."""

from __future__ import annotations

from dsx.compiler.analysis import analyze_source
from dsx.diagnostics import DiagnosticCode

HEAD = """\
lm fast = "openai/gpt-4o-mini" { temperature = 0 }
retriever wiki = ColBERTv2(url = "http://127.0.0.1:8893", k = 3)

signature QA {
    in  question: str
    out answer: str
}

module M {
    answer = Predict(QA, lm = fast)
    retrieve = Retrieve(wiki)

    forward(question: str) {
        BODY
    }
}

program p = M()
"""


def _errors(body: str) -> list[tuple[str, int, int, str]]:
    text = HEAD.replace("BODY", body)
    analysis = analyze_source(text, "/tmp/resource_in_forward.dsx")
    source = analysis.files["/tmp/resource_in_forward.dsx"].source
    return [
        (d.code, *source.position(d.span.start), d.message)
        for d in analysis.diagnostics
        if d.severity == "error"
    ]


def test_lm_passed_in_a_call_says_to_set_it_on_the_declaration():
    [(code, line, col, message)] = _errors("return answer(question = question, lm = fast)")
    assert code == DiagnosticCode.WRONG_DECLARATION_KIND
    assert (line, col) == (14, 49)
    assert "`fast` is an lm" in message
    assert "`answer = Predict(QA, lm = fast)` in the module" in message


def test_a_retriever_used_as_a_value_says_to_declare_a_member():
    [(code, _, _, message)] = _errors(
        "docs = wiki(question)\n        return answer(question = question)"
    )
    assert code == DiagnosticCode.WRONG_DECLARATION_KIND
    assert "`wiki` is a retriever" in message and "`retrieve = Retrieve(wiki)`" in message


def test_the_declared_way_checks_clean():
    assert _errors("return answer(question = question)") == []
