"""``check_variant``: a rename's trial check re-checks only what the edit touches, on a copy
of the live analysis. Differential: for renames of every kind of symbol in real files, its
diagnostics must equal a fresh full check's, and the live analysis must stay as it was."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from dsx.compiler.analysis import Analysis, analyze_path, analyze_source, check_variant

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(
    [
        *ROOT.glob("examples/*.dsx"),
        *(p for p in (ROOT / "tests" / "cases" / "check").glob("*.dsx") if "imports" not in p.name),
    ]
)
_UNKNOWN = re.compile(r"unknown [a-z ]+ `([A-Za-z_][A-Za-z0-9_]*)`")
KINDS = {
    "signature",
    "field",
    "type",
    "enum",
    "record_field",
    "enum_member",
    "module",
    "submodule",
    "param",
    "local",
    "program",
    "data",
    "metric",
}


def _snapshot(a: Analysis) -> tuple[object, ...]:
    assert a.model is not None
    return (
        [(d.code, d.message, d.span.start, d.span.end) for d in a.diagnostics],
        sorted((k, s.span.start) for k, s in a.model.symbols.items()),
        [(r.key, r.span.start) for r in a.model.references],
        a.unit.model_dump_json(),
    )


def _diags(a: Analysis) -> Counter[tuple[str, str, str]]:
    return Counter((d.code, d.span.file, d.message) for d in a.diagnostics)


def _renames(a: Analysis) -> list[tuple[str, str, list[tuple[int, int]]]]:
    """(symbol key, new name, spans to replace) for a spread of symbols and new names."""
    assert a.model is not None
    model = a.model
    tops = [d.name for d in model.declarations()]
    # A name the file uses but does not declare: renaming something to it changes what
    # that use means, in a block the rename does not touch.
    unknown = [m.group(1) for d in a.diagnostics if (m := _UNKNOWN.match(d.message))][:1]
    out = []
    for key, sym in model.symbols.items():
        if sym.kind not in KINDS or sym.span.file != a.root:
            continue
        spans = [(sym.span.start, sym.span.end)]
        refs = model.references_to(key)
        if any(r.span.file != a.root for r in refs):
            continue
        spans += [(r.span.start, r.span.end) for r in refs]
        siblings = [
            s.name for s in model.symbols.values() if s.container == sym.container and s.key != key
        ]
        for new in ("zz_fresh", *siblings[:1], *tops[:1], "len", *unknown):
            if new != sym.name:
                out.append((key, new, spans))
    return out


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_trial_check_agrees_with_a_full_check(path: Path) -> None:
    live = analyze_path(path)
    before = _snapshot(live)
    text = live.texts[live.root]
    cases = _renames(live)
    assert cases, "nothing to rename in this file"
    incremental = 0
    for key, new, spans in cases:
        if any(text[s:e] != key.rsplit(".", 1)[-1].split("(")[-1].rstrip(")") for s, e in spans):
            continue  # a reference that is not the bare name (not what rename edits)
        edited = text
        for start, end in sorted(set(spans), reverse=True):
            edited = edited[:start] + new + edited[end:]
        trial = check_variant(live, {live.root: edited})
        full = analyze_source(edited, live.root, overlays=dict(live.texts))
        assert _diags(trial) == _diags(full), (path.name, key, new)
        assert trial.unit.to_json() == full.unit.to_json(), (path.name, key, new)
        assert _snapshot(live) == before, (path.name, key, new)
        incremental += trial.incremental
    assert incremental > 0  # the trial checks did take the incremental path
