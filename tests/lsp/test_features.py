"""The language server end to end over stdio, as an editor drives it: every feature on a
copy of the RAG example (plus a second file for workspace-wide features)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient

from ._helpers import (
    CONFIG,
    apply_edits,
    change,
    initialize,
    open_doc,
    pos,
    rng,
    server_capabilities,
    td,
    wait_diagnostics,
)

pytestmark = [pytest.mark.lsp, pytest.mark.asyncio(loop_scope="module")]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ws")
    for name in ("rag.dsx", "qa.dsx", "classifier.dsx", "search_tools.py"):
        shutil.copy(EXAMPLES / name, root / name)
    shutil.copytree(EXAMPLES / "data", root / "data")
    return root


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def client(lsp_client: LanguageClient, workspace: Path):
    await initialize(lsp_client, workspace)
    yield
    await lsp_client.shutdown_session()


@pytest.fixture(scope="module")
def rag(workspace: Path) -> tuple[str, str]:
    path = workspace / "rag.dsx"
    return path.as_uri(), path.read_text()


async def _opened(client: LanguageClient, workspace: Path, name: str) -> tuple[str, str]:
    path = workspace / name
    uri = path.as_uri()
    if uri not in client.diagnostics:
        open_doc(client, path)
        await wait_diagnostics(client, uri)
    return uri, path.read_text()


async def test_initialize_advertises_every_feature(client: LanguageClient):
    caps = server_capabilities(client)
    assert caps is not None
    assert caps.completion_provider is not None
    assert "." in (caps.completion_provider.trigger_characters or [])
    for name in (
        "hover_provider",
        "definition_provider",
        "references_provider",
        "rename_provider",
        "document_symbol_provider",
        "workspace_symbol_provider",
        "document_formatting_provider",
        "semantic_tokens_provider",
        "code_lens_provider",
        "code_action_provider",
        "document_highlight_provider",
        "signature_help_provider",
        "folding_range_provider",
        "inlay_hint_provider",
        "selection_range_provider",
    ):
        assert getattr(caps, name), name
    assert "(" in (caps.signature_help_provider.trigger_characters or [])  # type: ignore[union-attr]
    assert isinstance(caps.rename_provider, types.RenameOptions)
    assert caps.rename_provider.prepare_provider
    # This client cannot pull diagnostics, so the server pushes them instead.
    assert caps.diagnostic_provider is None
    assert caps.position_encoding == types.PositionEncodingKind.Utf16


async def test_diagnostics_on_open_clean_file(client: LanguageClient, workspace: Path):
    uri, _ = await _opened(client, workspace, "rag.dsx")
    assert list(client.diagnostics[uri]) == []


async def test_diagnostics_follow_edits_and_clear(client: LanguageClient, workspace: Path):
    path = workspace / "scratch.dsx"
    text = "signature S { in q: str  out a: str }\nprogram p = Predict(S)\n"
    uri = open_doc(client, path, text)
    await wait_diagnostics(client, uri, lambda d: len(d) == 0)
    # Misspell the signature: an unknown-signature error with a did-you-mean.
    change(client, uri, 2, [(rng(text, "(S)"), "(Sx)")])
    diags = await wait_diagnostics(client, uri, lambda d: any(x.code == "DSX104" for x in d))
    d = next(x for x in diags if x.code == "DSX104")
    assert "did you mean `S`" in d.message
    assert d.severity == types.DiagnosticSeverity.Error
    assert d.range.start == types.Position(line=1, character=20)
    # A syntax error in one block leaves the other block's diagnostics alone.
    edited = text.replace("(S)", "(Sx)")
    change(client, uri, 3, [(rng(edited, "in q"), "in q:: ")])
    diags = await wait_diagnostics(client, uri, lambda d: any(x.code == "DSX001" for x in d))
    assert [x.code for x in diags if x.code == "DSX001"] == ["DSX001"]
    # Back to valid text: everything clears.
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=4),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )
    await wait_diagnostics(client, uri, lambda d: len(d) == 0)
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=td(uri)))


async def test_bad_interpolation_keeps_the_documents_other_features(
    client: LanguageClient, workspace: Path
):
    # Issue 16: `"{a b}"` crashed the checker and the document lost every feature.
    path = workspace / "interp.dsx"
    text = (
        "signature S { in x: str  out y: str }\n"
        "module M {\n    p = Predict(S)\n    forward(x: str) {\n"
        '        return p(x = "{x:.2f} and {x b}")\n    }\n}\n'
        "program m = M()\nprogram n = Predict(Sx)\n"
    )
    uri = open_doc(client, path, text)
    diags = await wait_diagnostics(client, uri, lambda d: len(d) >= 3)
    assert sorted(str(d.code) for d in diags) == ["DSX002", "DSX002", "DSX104"]
    assert next(d for d in diags if d.code == "DSX002").range.start == pos(text, ":.2f")
    h = await client.text_document_hover_async(
        types.HoverParams(text_document=td(uri), position=pos(text, "S)", 0))
    )
    assert h is not None and "signature S" in h.contents.value  # type: ignore[union-attr]
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=td(uri), position=pos(text, "p(x =", 2))
    )
    assert result is not None
    items = result.items if isinstance(result, types.CompletionList) else result
    assert any(i.label == "x" for i in items)
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=td(uri)))


async def test_warnings_and_related_information(client: LanguageClient, workspace: Path):
    path = workspace / "dupes.dsx"
    text = (
        "signature A { in q: str out a: str }\n"
        "signature A { in q: str out b: str }\n"
        "signature Unused { in q: str out a: str }\n"
        "program p = Predict(A)\n"
    )
    uri = open_doc(client, path, text)
    diags = await wait_diagnostics(client, uri, lambda d: len(d) >= 2)
    dup = next(d for d in diags if d.code == "DSX102")
    assert dup.related_information and dup.related_information[0].location.uri == uri
    assert dup.related_information[0].location.range.start.line == 0
    unused = next(d for d in diags if d.code == "DSX200")
    assert unused.severity == types.DiagnosticSeverity.Warning
    assert list(unused.tags or []) == [types.DiagnosticTag.Unnecessary]


async def test_hover_signature_field_module_kind(client: LanguageClient, workspace: Path):
    uri, text = await _opened(client, workspace, "rag.dsx")
    h = await client.text_document_hover_async(
        types.HoverParams(text_document=td(uri), position=pos(text, "GenerateAnswer)", 3))
    )
    assert h is not None and isinstance(h.contents, types.MarkupContent)
    value = h.contents.value
    assert "signature GenerateAnswer" in value
    assert "Answer questions with short factoid answers." in value  # the instructions
    assert "`in context: list[str]` — may contain relevant facts" in value
    assert h.range == rng(text, "GenerateAnswer", nth=1)

    h = await client.text_document_hover_async(
        types.HoverParams(text_document=td(uri), position=pos(text, "answer: str", 1))
    )
    assert h is not None and "out answer: str" in h.contents.value  # type: ignore[union-attr]
    assert "often between 1 and 5 words" in h.contents.value  # type: ignore[union-attr]

    h = await client.text_document_hover_async(
        types.HoverParams(text_document=td(uri), position=pos(text, "RAG(k: int", 1))
    )
    value = h.contents.value  # type: ignore[union-attr]
    assert "module RAG(k: int = 3)" in value and "forward(question: str)" in value
    assert "`answer: str`" in value  # what forward returns

    h = await client.text_document_hover_async(
        types.HoverParams(text_document=td(uri), position=pos(text, "k = k", 4))
    )
    assert "k: int = 3" in h.contents.value  # type: ignore[union-attr]
    assert "Parameter of module `RAG`" in h.contents.value  # type: ignore[union-attr]

    h = await client.text_document_hover_async(
        types.HoverParams(text_document=td(uri), position=pos(text, "ChainOfThought", 2))
    )
    assert "reasoning" in h.contents.value  # type: ignore[union-attr]

    h = await client.text_document_hover_async(
        types.HoverParams(text_document=td(uri), position=pos(text, "query   =", 1))
    )
    assert "query: str" in h.contents.value  # type: ignore[union-attr]
    assert "Local variable" in h.contents.value  # type: ignore[union-attr]


async def test_hover_shows_diagnostic_code_doc(client: LanguageClient, workspace: Path):
    path = workspace / "hover_diag.dsx"
    text = 'signature S { in q: str out a: str }\nprogram p = Predict(S)\ntest t for p {\n    given qq = "x"\n}\n'
    uri = open_doc(client, path, text)
    await wait_diagnostics(client, uri, lambda d: any(x.code == "DSX124" for x in d))
    h = await client.text_document_hover_async(
        types.HoverParams(text_document=td(uri), position=pos(text, "qq", 1))
    )
    assert h is not None
    assert "**DSX124** `invalid-test`" in h.contents.value  # type: ignore[union-attr]


async def test_completion_contexts(client: LanguageClient, workspace: Path):
    path = workspace / "completing.dsx"
    base = (workspace / "rag.dsx").read_text()
    uri = open_doc(client, path, base)
    await wait_diagnostics(client, uri)

    version = [1]

    async def labels(text: str, at: str, delta: int = 0) -> list[str]:
        version[0] += 1
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version[0]),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
            )
        )
        result = await client.text_document_completion_async(
            types.CompletionParams(text_document=td(uri), position=pos(text, at, delta))
        )
        assert isinstance(result, types.CompletionList)
        return [i.label for i in result.items]

    ret = "        return answer(context = context, question = question)"
    # field names inside a predictor call
    t = base.replace(ret, "        x = answer(|)\n" + ret)
    assert await labels(t.replace("|", ""), "answer()", 7) == ["context", "question"]
    # outputs after `.` on a prediction (ChainOfThought adds reasoning)
    t = base.replace(
        ret, "        p = answer(context = context, question = question)\n        p.|\n" + ret
    )
    got = await labels(t.replace("|", ""), "p.\n", 2)
    assert set(got) == {"reasoning", "answer"}
    # outputs of a call directly
    t = base.replace(ret, "        rewrite(question = question).|\n" + ret)
    assert await labels(t.replace("|", ""), "question).", 10) == ["search_query"]
    # predictor kinds and declared modules for a member
    t = base.replace(
        "    answer   = ChainOfThought", "    extra = |\n    answer   = ChainOfThought"
    )
    got = await labels(t.replace("|", ""), "extra = ", 8)
    assert {"Predict", "ChainOfThought", "ReAct", "Retrieve", "RAG"} <= set(got)
    # settings of a kind, signatures first
    t = base.replace(
        "    answer   = ChainOfThought", "    extra = Predict(|)\n    answer   = ChainOfThought"
    )
    got = await labels(t.replace("|", ""), "Predict()", 8)
    assert got[:2] == ["GenerateAnswer", "Rewrite"] and "temperature" in got
    # types after `:`
    t = base.replace("    in  question: str\n", "    in  question: str\n    in  extra: |\n", 1)
    got = await labels(t.replace("|", ""), "extra: ", 7)
    assert {"str", "int", "list", "dict", "Image"} <= set(got)
    # keywords in a signature body and at the top level
    t = base.replace("    in  question: str\n", "    in  question: str\n    |\n", 1)
    assert await labels(t.replace("|", ""), "question: str\n    \n", 18) == [
        "in",
        "out",
        "instructions",
    ]
    got = await labels(base + "\n", "seed   0\n}\n\n", 13)
    assert {"signature", "module", "program", "optimize", "test"} <= set(got)
    # names from `use python` modules
    t = base + "\nmetric other = tools.\n"
    got = await labels(t, "tools.\n", 6)
    assert {"search", "exact_match"} <= set(got)
    # statement keywords and names in scope inside forward
    t = base.replace(ret, "        \n" + ret)
    got = await labels(t, "        \n", 8)
    assert {"return", "if", "for", "query", "context", "answer", "question", "k", "len"} <= set(got)
    # program names after `test ... for`; inputs after `given`
    t = base + "\ntest t for rag {\n    given \n}\n"
    got = await labels(t, "given \n", 6)
    assert got == ["question"]
    got = await labels(base + "\ntest t for ", "test t for ", 11)
    assert got == ["rag"]
    # nothing inside a comment
    got = await labels(base + "\n// a comment ", "a comment ", 10)
    assert got == []


async def test_completion_snippets_need_client_support(client: LanguageClient, workspace: Path):
    uri, _ = await _opened(client, workspace, "rag.dsx")
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=td(uri), position=types.Position(line=0, character=0))
    )
    assert isinstance(result, types.CompletionList)
    sig = next(i for i in result.items if i.label == "signature")
    assert sig.insert_text_format == types.InsertTextFormat.Snippet
    assert "${1:Name}" in (sig.insert_text or "")


async def test_definition_and_references(client: LanguageClient, workspace: Path):
    uri, text = await _opened(client, workspace, "rag.dsx")
    defs = await client.text_document_definition_async(
        types.DefinitionParams(text_document=td(uri), position=pos(text, "answer(context", 2))
    )
    assert isinstance(defs, list) and len(defs) == 1
    member = pos(text, "answer   =")
    assert defs[0].uri == uri and defs[0].range.start == member
    assert defs[0].range.end == pos(text, "answer   =", 6)
    # a kwarg name goes to the signature field
    defs = await client.text_document_definition_async(
        types.DefinitionParams(text_document=td(uri), position=pos(text, "context = context", 2))
    )
    assert defs and defs[0].range == rng(text, "context")  # type: ignore[index]
    # `import`-like: use python string -> the Python file
    defs = await client.text_document_definition_async(
        types.DefinitionParams(text_document=td(uri), position=pos(text, '"search_tools"', 3))
    )
    assert defs and defs[0].uri.endswith("search_tools.py")  # type: ignore[index]
    refs = await client.text_document_references_async(
        types.ReferenceParams(
            text_document=td(uri),
            position=pos(text, "GenerateAnswer", 2),
            context=types.ReferenceContext(include_declaration=True),
        )
    )
    assert sorted((r.range.start.line, r.range.start.character) for r in refs or []) == [
        (4, 10),
        (15, 30),
    ]
    refs = await client.text_document_references_async(
        types.ReferenceParams(
            text_document=td(uri),
            position=pos(text, "query   =", 1),
            context=types.ReferenceContext(include_declaration=False),
        )
    )
    # the local `query` is read once
    assert [r.range.start.line for r in refs or []] == [19]
    highlights = await client.text_document_document_highlight_async(
        types.DocumentHighlightParams(text_document=td(uri), position=pos(text, "query   =", 1))
    )
    assert highlights is not None and len(highlights) == 2


async def test_rename_signature_field_and_refusals(client: LanguageClient, workspace: Path):
    path = workspace / "renaming.dsx"
    text = (workspace / "rag.dsx").read_text()
    uri = open_doc(client, path, text)
    await wait_diagnostics(client, uri)
    prep = await client.text_document_prepare_rename_async(
        types.PrepareRenameParams(text_document=td(uri), position=pos(text, "GenerateAnswer", 3))
    )
    assert isinstance(prep, types.PrepareRenamePlaceholder) and prep.placeholder == "GenerateAnswer"
    # a field: definition and the kwarg in the call
    edit = await client.text_document_rename_async(
        types.RenameParams(
            text_document=td(uri), position=pos(text, "context: list", 1), new_name="passages"
        )
    )
    assert edit is not None and edit.changes is not None
    new_text = apply_edits(text, edit.changes[uri])
    assert "in  passages: list[str]" in new_text
    assert "answer(passages = context, question = question)" in new_text
    # a module and a program
    edit = await client.text_document_rename_async(
        types.RenameParams(text_document=td(uri), position=pos(text, "RAG(k", 1), new_name="Rag2")
    )
    assert edit is not None and edit.changes is not None
    assert apply_edits(text, edit.changes[uri]).count("Rag2") == 2
    # invalid names are refused with a message
    for bad, why in (
        ("1abc", "not a valid name"),
        ("Rewrite", "already declared"),
        ("true", "literal"),
    ):
        with pytest.raises(Exception, match=why):
            await client.text_document_rename_async(
                types.RenameParams(
                    text_document=td(uri), position=pos(text, "GenerateAnswer", 3), new_name=bad
                )
            )
    with pytest.raises(Exception, match="already"):
        await client.text_document_rename_async(
            types.RenameParams(
                text_document=td(uri), position=pos(text, "rewrite  =", 1), new_name="answer"
            )
        )
    # built-in names cannot be renamed
    prep = await client.text_document_prepare_rename_async(
        types.PrepareRenameParams(text_document=td(uri), position=pos(text, "Predict", 2))
    )
    assert prep is None


async def test_document_and_workspace_symbols(client: LanguageClient, workspace: Path):
    uri, _ = await _opened(client, workspace, "rag.dsx")
    symbols = await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=td(uri))
    )
    assert symbols is not None
    names = [s.name for s in symbols]
    assert names == [
        "tools",
        "GenerateAnswer",
        "Rewrite",
        "RAG",
        "rag",
        "train",
        "em",
        "optimize rag",
    ]
    rag_module = next(s for s in symbols if s.name == "RAG")
    assert isinstance(rag_module, types.DocumentSymbol) and rag_module.children
    assert [c.name for c in rag_module.children] == [
        "k",
        "retrieve",
        "rewrite",
        "answer",
        "forward",
    ]
    sig = next(s for s in symbols if s.name == "GenerateAnswer")
    assert [c.name for c in sig.children or []] == ["context", "question", "answer"]  # type: ignore[union-attr]
    found = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="clsfy"))
    assert found is not None
    assert any(s.name == "Classify" and s.location.uri.endswith("classifier.dsx") for s in found)  # type: ignore[union-attr]


async def test_formatting(client: LanguageClient, workspace: Path):
    path = workspace / "messy.dsx"
    text = "signature   S {in q:str\nout a : str}\nprogram p=Predict( S )\n"
    uri = open_doc(client, path, text)
    edits = await client.text_document_formatting_async(
        types.DocumentFormattingParams(
            text_document=td(uri), options=types.FormattingOptions(tab_size=4, insert_spaces=True)
        )
    )
    assert edits
    from dsx.compiler.formatter import format_source

    assert apply_edits(text, edits) == format_source(text)
    # already formatted: no edits
    uri2 = open_doc(client, workspace / "formatted.dsx", format_source(text))
    again = await client.text_document_formatting_async(
        types.DocumentFormattingParams(
            text_document=td(uri2), options=types.FormattingOptions(tab_size=4, insert_spaces=True)
        )
    )
    assert list(again or []) == []


async def test_semantic_tokens(client: LanguageClient, workspace: Path):
    uri, text = await _opened(client, workspace, "rag.dsx")
    legend = server_capabilities(client).semantic_tokens_provider.legend  # type: ignore[union-attr]
    tokens = await client.text_document_semantic_tokens_full_async(
        types.SemanticTokensParams(text_document=td(uri))
    )
    assert tokens is not None and len(tokens.data) % 5 == 0
    decoded = {}
    line = char = 0
    lines = text.split("\n")
    for i in range(0, len(tokens.data), 5):
        dl, dc, length, ttype, mods = tokens.data[i : i + 5]
        line += dl
        char = char + dc if dl == 0 else dc
        decoded[(line, lines[line][char : char + length])] = (
            legend.token_types[ttype],
            [m for b, m in enumerate(legend.token_modifiers) if mods & (1 << b)],
        )
    assert decoded[(4, "GenerateAnswer")] == ("interface", ["declaration"])
    assert decoded[(15, "GenerateAnswer")] == ("interface", [])
    assert decoded[(15, "ChainOfThought")] == ("class", ["defaultLibrary"])
    assert decoded[(5, "context")] == ("property", ["declaration"])
    assert decoded[(12, "k")][0] == "parameter"
    assert decoded[(18, "query")] == ("variable", ["declaration"])
    assert decoded[(1, "tools")] == ("namespace", ["declaration"])


async def test_code_lenses(client: LanguageClient, workspace: Path):
    uri, _ = await _opened(client, workspace, "classifier.dsx")
    lenses = await client.text_document_code_lens_async(types.CodeLensParams(text_document=td(uri)))
    assert lenses is not None
    titles = [(lens.command.title, lens.command.command) for lens in lenses if lens.command]
    assert ("▶ Run", "dsx.run") in titles and ("Build", "dsx.build") in titles
    tests = [lens for lens in lenses if lens.command and lens.command.command == "dsx.test"]
    assert [t.command.arguments[0]["test"] for t in tests] == ["refund", "crash"]  # type: ignore[union-attr,index]
    assert tests[0].command.arguments[0]["program"] == "classify"  # type: ignore[union-attr,index]
    assert any(lens.command.title == "Build (optimize)" for lens in lenses if lens.command)


async def test_quick_fix_applies_did_you_mean(client: LanguageClient, workspace: Path):
    path = workspace / "fixme.dsx"
    text = "signature QA { in question: str out answer: str }\nprogram qa = Predict(QAA)\n"
    uri = open_doc(client, path, text)
    diags = await wait_diagnostics(client, uri, lambda d: any(x.code == "DSX104" for x in d))
    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=td(uri),
            range=rng(text, "QAA"),
            context=types.CodeActionContext(diagnostics=list(diags)),
        )
    )
    assert actions and isinstance(actions[0], types.CodeAction)
    action = actions[0]
    assert action.kind == types.CodeActionKind.QuickFix and action.title == "replace with `QA`"
    assert action.edit is not None and action.edit.changes is not None
    assert apply_edits(text, action.edit.changes[uri]) == text.replace("QAA", "QA")


async def test_requests_for_unopened_files_read_disk(client: LanguageClient, workspace: Path):
    uri = (workspace / "qa.dsx").as_uri()
    symbols = await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=td(uri))
    )
    assert symbols and symbols[0].name == "QA"
    missing = (workspace / "nope.dsx").as_uri()
    assert (
        await client.text_document_hover_async(
            types.HoverParams(
                text_document=td(missing), position=types.Position(line=0, character=0)
            )
        )
        is None
    )


async def test_hover_on_an_optimizer_shows_its_registry_settings(
    client: LanguageClient, workspace: Path
):
    path = workspace / "hover_optimizer.dsx"
    text = (
        'signature S = "q -> a"\nprogram p = Predict(S)\n'
        'data train = jsonl("train.jsonl", inputs = [q])\nmetric em = exact_match\n'
        'optimize p {\n    with   MIPROv2(auto = "light")\n    train  train\n    metric em\n}\n'
    )
    uri = open_doc(client, path, text)
    await wait_diagnostics(client, uri)
    h = await client.text_document_hover_async(
        types.HoverParams(text_document=td(uri), position=pos(text, "MIPROv2", 2))
    )
    assert h is not None
    value = h.contents.value  # type: ignore[union-attr]
    assert "MIPROv2(...)" in value and "Settings:" in value
    assert '- `auto`: "light" | "medium" | "heavy" | none' in value
    assert "`minibatch_size`: an int = `35`" in value
    planned = text.replace('MIPROv2(auto = "light")', "BetterTogether()")
    uri = open_doc(client, workspace / "hover_planned.dsx", planned)
    await wait_diagnostics(client, uri)
    h = await client.text_document_hover_async(
        types.HoverParams(text_document=td(uri), position=pos(planned, "BetterTogether", 2))
    )
    assert h is not None
    assert "does not have yet" in h.contents.value  # type: ignore[union-attr]


async def test_semantic_tokens_color_available_and_planned_optimizers_alike(
    client: LanguageClient, workspace: Path
):
    legend = server_capabilities(client).semantic_tokens_provider.legend  # type: ignore[union-attr]
    found = {}
    for name in ("MIPROv2", "BetterTogether"):
        text = (
            'signature S = "q -> a"\nprogram p = Predict(S)\nmetric em = exact_match\n'
            f"optimize p {{\n    with   {name}()\n    train  tests\n    metric em\n}}\n"
        )
        uri = open_doc(client, workspace / f"tokens_{name}.dsx", text)
        await wait_diagnostics(client, uri)
        tokens = await client.text_document_semantic_tokens_full_async(
            types.SemanticTokensParams(text_document=td(uri))
        )
        assert tokens is not None
        line = char = 0
        for i in range(0, len(tokens.data), 5):
            dl, dc, length, ttype, _ = tokens.data[i : i + 5]
            line += dl
            char = char + dc if dl == 0 else dc
            if line == 4 and text.split("\n")[4][char : char + length] == name:
                found[name] = legend.token_types[ttype]
    assert found == {"MIPROv2": "class", "BetterTogether": "class"}
