"""What the editor sees after each keystroke: an incremental re-check (only changed blocks,
and what depends on them) must say exactly what a full check of the same text says —
diagnostics, IR, symbols and references — for edits anywhere in a file."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dsx.compiler.analysis import Analysis, analyze_source

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from frontend import generate  # noqa: E402

SOURCES = {
    **{p.name: p.read_text() for p in sorted((ROOT / "examples").glob("*.dsx"))},
    "clean.dsx": (ROOT / "tests" / "cases" / "check" / "clean.dsx").read_text(),
    "generated.dsx": generate(120),
    # records typed with described enums (a re-checked record once lost the descriptions)
    "records.dsx": """\
enum Urgency {
    low "can wait"
    high "today"
}

type Ticket {
    title: str
    urgency: Urgency
    tags: list[str] = []
}

signature Triage {
    in  ticket: Ticket
    out urgency: Urgency  "how soon"
    out note: str
}

module Desk {
    triage = Predict(Triage)

    forward(ticket: Ticket) {
        return triage(ticket = ticket)
    }
}

program desk = Desk()
""",
}
WORDS = [
    "question",
    "answer",
    "context",
    "query",
    "str",
    "int",
    "list",
    "Predict",
    "ChainOfThought",
    "reasoning",
    "passages",
    "k",
    "x",
    "none",
    "true",
    "pred",
    "result",
    "tools",
    "Answer0",
    "Rewrite0",
    "Rag0",
    "rag0",
    "GenerateAnswer",
    "search_query",
    "topic",
    "urgency",
    "low",
]
TOKENS = [" ", ".", ",", "(", ")", "x", "1", '"', "?", "| int", ": str", " = 2", "_"]


def summary(analysis: Analysis) -> tuple[object, ...]:
    return (
        sorted(
            (d.code, d.span.file, d.span.start, d.span.end, d.message) for d in analysis.diagnostics
        ),
        analysis.unit.to_json(),
        sorted(
            (s.key, s.kind, s.span.file, s.span.start, s.span.end, s.detail)
            for s in analysis.symbols.values()
        ),
        sorted((r.key, r.span.file, r.span.start, r.span.end) for r in analysis.references),
    )


@st.composite
def line_edits(draw: st.DrawFn, text: str) -> str:
    """``text`` with one line changed (the number of lines stays the same)."""
    lines = text.split("\n")
    candidates = [i for i, line in enumerate(lines) if line.strip()]
    i = draw(st.sampled_from(candidates))
    line = lines[i]
    action = draw(st.sampled_from(["word", "insert", "delete"]))
    if action == "word":
        words = list(re.finditer(r"[A-Za-z_][A-Za-z0-9_]*", line))
        if words:
            m = draw(st.sampled_from(words))
            line = line[: m.start()] + draw(st.sampled_from(WORDS)) + line[m.end() :]
    elif action == "insert":
        at = draw(st.integers(0, len(line)))
        line = line[:at] + draw(st.sampled_from(TOKENS)) + line[at:]
    else:
        at = draw(st.integers(0, max(0, len(line) - 1)))
        line = line[:at] + line[at + draw(st.integers(1, 6)) :]
    lines[i] = line
    return "\n".join(lines)


@st.composite
def edit_sessions(draw: st.DrawFn) -> tuple[str, str, list[str]]:
    name = draw(st.sampled_from(sorted(SOURCES)))
    text = SOURCES[name]
    versions = []
    for _ in range(draw(st.integers(1, 5))):
        text = draw(line_edits(text))
        versions.append(text)
    return name, SOURCES[name], versions


@settings(
    max_examples=int(os.environ.get("DSX_INCREMENTAL_EXAMPLES", "250")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(edit_sessions())
def test_incremental_recheck_equals_full_check(session: tuple[str, str, list[str]]):
    name, original, versions = session
    path = str(ROOT / "examples" / name)  # next to search_tools.py and data/
    caches: dict = {}
    prev = analyze_source(original, path, caches=caches)
    for text in [*versions, original]:
        prev = analyze_source(text, path, caches=caches, previous=prev)
        full = analyze_source(text, path)
        if any(d.code == "DSX001" for d in full.diagnostics):
            # While a block does not parse, an incremental check keeps its last meaning
            # (no cascade of unknown names); syntax errors agree. Checking goes on
            # incrementally: once the text parses again, both must agree on everything.
            assert sorted(
                (d.span.start, d.message) for d in prev.diagnostics if d.code == "DSX001"
            ) == sorted((d.span.start, d.message) for d in full.diagnostics if d.code == "DSX001")
            continue
        assert summary(prev) == summary(full)


def test_a_signature_edit_is_rechecked_with_its_users_only():
    text = generate(300)
    path = "/tmp/incremental/generated.dsx"
    caches: dict = {}
    prev = analyze_source(text, path, caches=caches)
    edited = text.replace("    out answer: str ", "    out reply: str ", 1)
    again = analyze_source(edited, path, caches=caches, previous=prev)
    assert again.incremental
    assert summary(again) == summary(analyze_source(edited, path))
    # `Rag0` read `pred.answer`... no: it returns the prediction; the program's outputs changed.
    assert again.unit.get("signatures", "Answer0").outputs[0].name == "reply"


def test_a_broken_block_deleted_takes_its_kept_meaning_with_it():
    """A block that stops parsing keeps its last meaning (here: `use python ... as osp`);
    once that block is only blank lines, the meaning is gone: `osp` is unknown again."""
    path = str(ROOT / "examples" / "clean.dsx")
    text = SOURCES["clean.dsx"]
    lines = text.split("\n")
    assert lines[1].startswith("use python") and "as osp" in lines[1]
    caches: dict = {}
    prev = analyze_source(text, path, caches=caches)
    steps = [
        "\n".join([lines[0], lines[1], "    out extra: str", *lines[2:]]),  # use python breaks
        "\n".join(["    out extra: str", *lines[2:]]),  # its first line goes
        "\n".join(lines[2:]),  # and the stray line: the block is blank
    ]
    for step in steps:
        prev = analyze_source(step, path, caches=caches, previous=prev)
    full = analyze_source(steps[-1], path)
    assert any(d.message == "unknown name `osp`" for d in full.diagnostics)
    assert summary(prev)[0] == summary(full)[0]


NEW_LINES = [
    "    out extra: str",
    "    in  hint: str?",
    "        z = len(query)",
    "    extra = Predict(GenerateAnswer)",
    "// a comment",
    "",
    "program again = Predict(QA)",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SOURCES)), st.data())
def test_added_and_removed_lines(name: str, data: st.DataObject):
    """Edits that add or remove lines: the IR's line numbers of untouched declarations are
    not re-derived (editors do not read them), everything else must agree."""
    path = str(ROOT / "examples" / name)
    text = SOURCES[name]
    caches: dict = {}
    prev = analyze_source(text, path, caches=caches)
    for _ in range(data.draw(st.integers(1, 4))):
        lines = text.split("\n")
        at = data.draw(st.integers(0, len(lines) - 1))
        if data.draw(st.booleans()):
            lines.insert(at, data.draw(st.sampled_from(NEW_LINES)))
        elif lines[at].strip():
            del lines[at]
        text = "\n".join(lines)
        prev = analyze_source(text, path, caches=caches, previous=prev)
        full = analyze_source(text, path)
        if any(d.code == "DSX001" for d in full.diagnostics):
            continue
        got, want = summary(prev), summary(full)
        assert (got[0], got[2], got[3]) == (want[0], want[2], want[3])
