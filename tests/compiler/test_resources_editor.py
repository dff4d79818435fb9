"""`lm` and `retriever` declarations in the editor (issue 16 item 3, issue 19 item 4):
completion of settings from the runtime's registry and of declared names where they are
used, hover showing a declared LM's endpoint, semantic tokens that do not trip on them,
and the TextMate grammar naming every retriever kind the registry has."""

from __future__ import annotations

import json
import re
from pathlib import Path

from lsprotocol import types

from dsx.lsp import completion, hover, semantic_tokens
from dsx.lsp.state import Session
from dsx.runtime import resources

GRAMMAR = Path(__file__).parents[2] / "vscode-extension" / "syntaxes" / "dsx.tmLanguage.json"

BASE = """lm fast = "openai/gpt-4o-mini" { temperature = 0 }
lm local = "openai/llama" { api_base = "http://10.1.2.3:8000/v1" }
lm robust = fallback(fast, local) { retries = 1 }
retriever wiki = Embeddings(corpus = "wiki.txt", embedder = "openai/e", k = 2)

signature QA {
    in  question: str
    out answer: str
}

module M {
    answer = Predict(QA, lm = robust)
    docs = Retrieve(wiki)
    forward(question: str) {
        return answer(question = question)
    }
}

program m = M()
"""


def _session(tmp_path, text: str):
    session = Session()
    doc = session.open((tmp_path / "res.dsx").as_uri(), text, 1)
    session.analyze(doc)
    return session, doc


def complete(tmp_path, text: str) -> list[str]:
    offset = text.index("|")
    text = text.replace("|", "", 1)
    session, doc = _session(tmp_path, BASE)
    doc.text = text
    doc.revision += 1
    position = doc.codec("utf-16").position(offset)
    return [i.label for i in completion.complete(session, doc, position).items]


def _hover(tmp_path, needle: str, skip: int = 0) -> str:
    session, doc = _session(tmp_path, BASE)
    offset = BASE.index(needle) + skip
    h = hover.hover(session, doc, doc.codec("utf-16").position(offset))
    assert h is not None and isinstance(h.contents, types.MarkupContent), needle
    return h.contents.value


def test_completes_lm_settings_from_the_registry_leaving_out_those_given(tmp_path):
    labels = complete(tmp_path, BASE.replace("{ temperature = 0 }", "{ temperature = 0, | }"))
    assert "max_tokens" in labels and "api_base" in labels and "api_key_env" in labels
    assert "temperature" not in labels and "api_key" not in labels


def test_completes_retries_in_a_fallback_and_declared_lms_inside_it(tmp_path):
    assert complete(tmp_path, BASE.replace("{ retries = 1 }", "{ | }")) == ["retries"]
    inside = complete(tmp_path, BASE.replace("fallback(fast, local)", "fallback(fast, |)"))
    assert {"fast", "local", "robust"} <= set(inside)


def test_completes_declared_lms_after_lm_equals(tmp_path):
    labels = complete(tmp_path, BASE.replace("lm = robust)", "lm = |)"))
    assert {"fast", "local", "robust"} <= set(labels) and "wiki" not in labels


def test_completes_retriever_kinds_and_their_settings(tmp_path):
    text = BASE.replace(
        'retriever wiki = Embeddings(corpus = "wiki.txt", embedder = "openai/e", k = 2)',
        "retriever wiki = |",
    )
    assert set(complete(tmp_path, text)) == set(resources.RETRIEVERS)
    text = BASE.replace(
        'Embeddings(corpus = "wiki.txt", embedder = "openai/e", k = 2)', 'Chroma(path = "db", |)'
    )
    labels = complete(tmp_path, text)
    assert {"collection", "embedder", "k"} <= set(labels) and "path" not in labels


def test_completes_declared_retrievers_in_retrieve(tmp_path):
    assert "wiki" in complete(tmp_path, BASE.replace("Retrieve(wiki)", "Retrieve(|)"))


def test_hover_shows_a_declared_lms_endpoint_where_it_is_used(tmp_path):
    text = _hover(tmp_path, "local)", 1)
    assert 'lm local = "openai/llama" { api_base = "http://10.1.2.3:8000/v1" }' in text
    used = _hover(tmp_path, "robust)", 1)
    assert "lm robust = fallback(fast, local) { retries = 1 }" in used


def test_hover_on_retriever_and_kind_and_keyword(tmp_path):
    assert "retriever wiki = Embeddings(" in _hover(tmp_path, "wiki)", 1)
    kind = _hover(tmp_path, "Embeddings(", 1)
    assert "`corpus` (required)" in kind and resources.RETRIEVERS["Embeddings"].doc in kind
    assert "a named LM for predictors" in _hover(tmp_path, "lm fast", 0)


def test_semantic_tokens_cover_the_declarations(tmp_path):
    session, doc = _session(tmp_path, BASE)
    toks = {
        (line, col): (length, ttype)
        for line, col, length, ttype, _ in semantic_tokens.tokens(session, doc)
    }
    names = semantic_tokens.TOKEN_TYPES
    lines = BASE.splitlines()

    def at(line: int, word: str) -> str:
        length, ttype = toks[(line, lines[line].index(word))]
        assert length == len(word)
        return names[ttype]

    assert at(0, "fast") == "variable"  # the declaration
    assert at(2, "fast") == "variable" and at(2, "fallback") == "function"
    assert at(3, "Embeddings") == "class"
    assert at(11, "robust") == "variable"  # a use: `lm = robust`
    assert at(12, "wiki") == "variable"


def test_the_grammar_names_every_retriever_kind():
    grammar = GRAMMAR.read_text(encoding="utf-8")
    node = next(
        n
        for n in json.loads(grammar)["repository"]["builtins"]["patterns"]
        if n.get("name") == "support.class.retriever.dsx"
    )
    m = re.search(r"\\b\(([^)]*)\)", node["match"])
    assert m is not None and set(m.group(1).split("|")) == set(resources.RETRIEVERS)


def test_rename_an_lm_changes_its_declaration_and_every_use(tmp_path):
    from dsx.lsp import rename

    session, doc = _session(tmp_path, BASE)
    (tmp_path / "res.dsx").write_text(BASE)
    position = doc.codec("utf-16").position(BASE.index("fast"))
    edit = rename.rename(session, doc, position, "quick")
    assert edit is not None and edit.changes is not None
    (edits,) = edit.changes.values()
    starts = sorted(doc.codec("utf-16").offset(e.range.start) for e in edits)
    assert [BASE[s : s + 4] for s in starts] == ["fast"] * 2  # `lm fast`, `fallback(fast, ...)`
    assert starts[1] == BASE.index("fallback(fast") + len("fallback(")


def test_outline_lists_the_declarations(tmp_path):
    from dsx.lsp import outline

    session, doc = _session(tmp_path, BASE)
    names = {(s.name, s.detail) for s in outline.document_symbols(session, doc)}
    assert {("fast", "lm"), ("robust", "lm"), ("wiki", "retriever")} <= names
    start = {s.name: s.kind for s in outline.document_symbols(session, doc)}
    assert start["fast"] == types.SymbolKind.Constant


def test_hover_on_a_setting_in_an_lm_block_says_what_it_is(tmp_path):
    text = _hover(tmp_path, "temperature = 0", 2)
    assert "LM setting: sampling temperature; a number." in text
    assert "LM setting" in _hover(tmp_path, "retries = 1", 1)


def test_completes_lm_as_a_predictor_setting_when_lms_are_declared(tmp_path):
    labels = complete(tmp_path, BASE.replace("Predict(QA, lm = robust)", "Predict(QA, |)"))
    assert "lm" in labels and "temperature" in labels


def test_prompt_preview_makes_no_declared_resource(tmp_path, monkeypatch):
    from dsx.compiler.analysis import analyze_source
    from dsx.lsp import preview

    # an unset key variable and a corpus that does not exist: making either would fail
    monkeypatch.delenv("H16C_PREVIEW_KEY", raising=False)
    text = BASE.replace(
        'lm fast = "openai/gpt-4o-mini" { temperature = 0 }',
        'lm fast = "openai/gpt-4o-mini" { temperature = 0, api_key_env = "H16C_PREVIEW_KEY" }',
    ).replace("program m = M()", "program m = M()\nprogram direct = Predict(QA, lm = fast)")
    unit = analyze_source(text, str(tmp_path / "p.dsx")).unit
    result = preview.render_prompt(unit, program="m", inputs={"question": "Why?"})
    assert [p["name"] for p in result["predictors"]] == ["answer"]
    assert "Why?" in json.dumps(result["predictors"][0])
    assert preview.render_prompt(unit, program="direct", inputs={"question": "q"})["predictors"]
