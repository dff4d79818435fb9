"""The declare and types passes run on their own, over explicit tables, and an edit
re-checked incrementally builds what a full check builds."""

from __future__ import annotations

from dsx.compiler._pass_declare import Names, declare_all
from dsx.compiler._pass_types import TypeTables, lower_types, resolve_type
from dsx.compiler._records import Records
from dsx.compiler.analysis import analyze_source
from dsx.grammar import ast
from dsx.grammar.parser import BlockCache, parse

SOURCE = """\
enum Urgency {
    low "can wait"
    high "today"
}

type Ticket {
    title: str
    urgency: Urgency
    tags: list[str] = []
}

type Ticket {
    again: str
}

type Loop {
    next: list[Loop]
}

signature Triage {
    in  ticket: Ticket
    out urgency: Urgency
}
"""


def _passes(text: str) -> tuple[Records, Names, TypeTables]:
    pf = parse(text, "/tmp/passes.dsx")
    records = Records({pf.source.path: pf.source})
    names, tables = Names(), TypeTables()
    decls = [(pf, d) for d in pf.decls]
    declare_all(records, names, decls)
    lower_types(records, names, tables, [d for _, d in decls])
    return records, names, tables


def test_declare_and_types_need_no_lowerer():
    records, names, tables = _passes(SOURCE)
    assert [(n, k) for n, (k, _) in names.decls.items()] == [
        ("Urgency", "enum"),
        ("Ticket", "type"),
        ("Loop", "type"),
        ("Triage", "signature"),
    ]
    assert set(tables.records) == {"Ticket", "Loop"} and set(tables.enums) == {"Urgency"}
    ticket = tables.records["Ticket"]
    assert [f.name for f in ticket.fields] == ["title", "urgency", "tags"]  # the first one
    # a record field typed with an enum says what its values mean
    assert "low (can wait)" in ticket.fields[1].desc
    messages = [d.message for d in records.diagnostics]
    assert any("declared twice" in m for m in messages), messages
    assert any("record `Loop` contains itself" in m for m in messages), messages
    assert {"Ticket.title", "Urgency.low", "Urgency.high"} <= set(records.symbols)
    assert {r.key for r in records.references} >= {"Urgency", "Loop"}


def test_resolve_type_reports_into_the_records():
    records, names, _ = _passes(SOURCE)
    pf = parse("type T {\n    x: dict[str, Urgency]\n    y: Urgncy\n}\n", "/tmp/t.dsx")
    records.sources[pf.source.path] = pf.source
    decl = pf.decls[0]
    assert isinstance(decl, ast.TypeDecl)
    good = resolve_type(records, names, decl.fields[0].type)
    assert (good.kind, good.args[1].kind, good.args[1].name) == ("dict", "enum", "Urgency")
    bad = resolve_type(records, names, decl.fields[1].type)
    assert bad.kind == "any"
    assert "did you mean `Urgency`?" in records.diagnostics[-1].message


def _edit_then_compare(before: str, after: str) -> None:
    caches: dict[str, BlockCache] = {}
    path = "/tmp/passes_edit.dsx"
    first = analyze_source(before, path, caches=caches)
    edited = analyze_source(after, path, caches=caches, previous=first)
    full = analyze_source(after, path)
    assert edited.unit is not None and full.unit is not None
    assert edited.unit.model_dump(exclude={"files"}) == full.unit.model_dump(exclude={"files"})
    assert sorted(d.message for d in edited.diagnostics) == sorted(
        d.message for d in full.diagnostics
    )


def test_a_record_rechecked_after_an_edit_describes_its_enum_values():
    # Re-checking only the edited record once left its enum-typed field without the
    # values' meanings that a full check gives it (what the prompt shows).
    before = SOURCE.replace("type Ticket {\n    again: str\n}\n\n", "")
    _edit_then_compare(before, before.replace("    title: str", '    title: str  "short"'))


def test_an_enum_edit_reaches_the_records_that_use_it():
    before = SOURCE.replace("type Ticket {\n    again: str\n}\n\n", "")
    _edit_then_compare(before, before.replace('high "today"', 'high "right now"'))


def test_editing_a_module_declared_twice_rechecks_without_crashing():
    # Found by the incremental differential test: a module named like a `use python`
    # alias is not registered; editing its body raised KeyError in the re-check.
    text = (
        'use python "os" as tools\n\n'
        "signature QA {\n    in  question: str\n    out answer: str\n}\n\n"
        "module tools {\n    answer = Predict(QA)\n\n"
        "    forward(question: str) {\n        return answer(question = question)\n    }\n}\n"
    )
    _edit_then_compare(text, text.replace("return answer(", "draft = 1\n        return answer("))


PROJECT = """\
lm fast = "openai/gpt-4o-mini" { temperature = 0 }

signature QA {
    in  question: str
    out answer: str
}

module Answer {
    qa = Predict(QA, lm = fast)

    forward(question: str) {
        return qa(question = question)
    }
}

program answer = Answer()

test paris for answer {
    given  question = "capital of France?"
    expect answer = 3
}
"""


def test_every_pass_runs_over_explicit_tables_without_a_lowerer():
    """declare → types → signatures → resources → module checker → project, each given the
    tables it reads: what a Lowerer runs, with no Lowerer."""
    from dsx.compiler._entries import _ModuleInfo
    from dsx.compiler._lower_modules import ModuleChecker
    from dsx.compiler._pass_project import ProjectPass, ProjectTables
    from dsx.compiler._pass_resources import ResourceTables, lower_resources
    from dsx.compiler._pass_signatures import SignatureTables, lower_signatures

    pf = parse(PROJECT, "/tmp/project.dsx")
    rec = Records({pf.source.path: pf.source})
    names, types, sigs, res = Names(), TypeTables(), SignatureTables(), ResourceTables()
    decls = [(pf, d) for d in pf.decls]
    plain = [d for _, d in decls]
    declare_all(rec, names, decls)
    lower_types(rec, names, types, plain)
    lower_signatures(rec, names, types, sigs, plain)
    lower_resources(rec, names, res, plain)
    modules: dict[str, _ModuleInfo] = {}
    checker = ModuleChecker(rec, names, types, sigs, res, modules)
    for d in plain:
        if isinstance(d, ast.ModuleDecl):
            modules[d.name.name] = _ModuleInfo(d)
            checker._module_header(modules[d.name.name])
    for name in list(modules):
        checker._module_forward(name)
    project = ProjectTables()
    step = ProjectPass(rec, names, types, sigs, project, checker, pf.source.path)
    for d in plain:
        if isinstance(d, ast.ProgramDecl):
            step.program(d)
    for d in plain:
        if isinstance(d, ast.TestDecl):
            step.test(d)
    assert set(res.lms) == {"fast"} and modules["Answer"].forward is not None
    assert set(project.programs) == {"answer"}
    inputs, outputs = project.program_io["answer"]
    assert list(inputs) == ["question"] and set(outputs.fields) == {"answer"}
    [test] = project.tests.values()
    assert test.name == "paris" and test.given[0][0] == "question"
    # the one problem, reported by the project pass into the shared records
    [problem] = [d for d in rec.diagnostics if d.severity == "error"]
    assert "output `answer` of program `answer`" in problem.message
    # and a full check agrees
    full = analyze_source(PROJECT, "/tmp/project.dsx")
    assert [d.message for d in full.errors] == [problem.message]
