"""Scripted LM replies in `test` blocks (issue 16, item 2): `reply { field = value }` and
`reply "text"` make `dsx test` run the program against the script, with no LM configured."""

from __future__ import annotations

from dsx.compiler.analysis import analyze_source
from dsx.compiler.formatter import format_source

PROGRAM = """\
enum Urgency { low, normal, high }

signature Classify {
    in  ticket: str
    out topic: "billing" | "bug" | "other"
    out urgency: Urgency
}

program classify = ChainOfThought(Classify)
"""

PASSING = """
test refund for classify {
    given  ticket = "I was charged twice, please refund."
    reply  {reasoning = "a double charge", topic = "billing", urgency = "high"}
    expect topic = "billing"
    expect urgency = "high"
    assert result.reasoning == "a double charge"
}

test raw for classify {
    given  ticket = "The app crashes."
    reply  "<<< reasoning >>>\\nit crashes\\n\\n<<< topic >>>\\nbug\\n\\n<<< urgency >>>\\nnormal\\n\\n<<< end >>>"
    expect topic = "bug"
}
"""

WRONG = """
test refund for classify {
    given  ticket = "I was charged twice, please refund."
    reply  {reasoning = "r", topic = "billing", urgency = "low"}
    expect urgency = "high"
}
"""

SHORT = """
module Twice {
    first  = Predict(Classify)
    second = Predict(Classify)
    forward(ticket: str) {
        a = first(ticket = ticket)
        return second(ticket = a.topic)
    }
}

program twice = Twice()

test short for twice {
    given  ticket = "x"
    reply  {topic = "bug", urgency = "low"}
    expect topic = "bug"
}
"""


def test_a_predictor_with_its_own_lm_answers_from_the_script(tmp_path):
    import dsx
    from dsx._load import load_namespace
    from dsx.runtime._testblocks import scripted_replies
    from dsx.testing import DummyLM

    path = tmp_path / "tickets.dsx"
    path.write_text(PROGRAM + PASSING)
    ns = load_namespace(path)
    test = next(t for t in ns.unit.tests if t.name == "refund")
    program = ns.program("classify")
    own = DummyLM([{"topic": "other", "urgency": "low"}])
    for p in program.predictors():
        p.lm = own
    env = ns._env()
    with dsx.context(lm=None), scripted_replies(test, program, env) as lm:
        result = program(ticket="x")
    assert (result.topic, result.urgency, result.reasoning) == (
        "billing",
        "high",
        "a double charge",
    )
    assert lm is not None and lm._index == 1
    assert all(p.lm is own for p in program.predictors())  # restored after the test
    with scripted_replies(test, program, env) as lm:
        program(ticket="x")
        try:
            program(ticket="y")
        except Exception as exc:
            assert "test `refund` scripts 1 reply" in str(exc)
        else:
            raise AssertionError("a second LM call past the script must fail")


def test_replies_are_checked_and_lowered():
    unit = analyze_source(PROGRAM + PASSING).unit
    refund = next(t for t in unit.tests if t.name == "refund")
    assert len(refund.replies) == 1 and refund.replies[0].kind == "dict"
    raw = next(t for t in unit.tests if t.name == "raw")
    assert len(raw.replies) == 1 and raw.replies[0].kind != "dict"
    bad = (
        PROGRAM
        + 'test t for classify {\n    given ticket = "x"\n    reply {urgency = "urgent"}\n}\n'
    )
    diags = analyze_source(bad).diagnostics
    assert [d.code for d in diags] == ["DSX131"]
    assert "expects Urgency" in diags[0].message
    assert bad[diags[0].span.start : diags[0].span.end] == '"urgent"'


def test_formatter_round_trips_replies():
    messy = PROGRAM + (
        "test t for classify {\n"
        '  given ticket="x"\n'
        '  reply {topic="bug",urgency = "low",}   // one call\n'
        "  reply {}\n"
        '  reply   "raw"\n'
        '  expect topic="bug"\n'
        "}\n"
    )
    once = format_source(messy)
    assert (
        "test t for classify {\n"
        '    given  ticket = "x"\n'
        '    reply  {topic = "bug", urgency = "low"}  // one call\n'
        "    reply  {}\n"
        '    reply  "raw"\n'
        '    expect topic = "bug"\n'
        "}\n"
    ) in once
    assert format_source(once) == once


def test_a_reply_may_give_an_inline_signatures_outputs():
    # `Predict("answer -> plausible: bool")`: its output is an output like any other; a
    # scripted reply giving it was refused (DSX131 "unknown output").
    text = (
        'signature QA = "question -> answer"\n'
        "module M {\n"
        "    answer = Predict(QA)\n"
        '    check  = Predict("answer -> plausible: bool")\n\n'
        "    forward(question: str) {\n"
        "        pred = answer(question = question)\n"
        '        suggest check(answer = pred.answer).plausible, "plausible"\n'
        "        return pred\n"
        "    }\n"
        "}\n"
        "program p = M()\n\n"
        "test t for p {\n"
        '    given  question = "q"\n'
        '    reply  {answer = "a"}\n'
        "    reply  {plausible = true}\n"
        '    expect answer = "a"\n'
        "}\n"
    )
    assert analyze_source(text, "/tmp/inline_reply.dsx").diagnostics == []
    wrong = analyze_source(text.replace("plausible = true", 'plausible = "yes"'), "/tmp/r.dsx")
    assert [d.code for d in wrong.diagnostics] == ["DSX131"]
