"""The server never crashes: an internal error in one feature is logged and answered with
an empty result, and the session goes on; hostile documents are survived."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from ._helpers import SERVER, initialize, open_doc, pos, replace_all, td, wait_diagnostics

pytestmark = [pytest.mark.lsp, pytest.mark.asyncio(loop_scope="module")]

FAULTY = ClientServerConfig(
    server_command=SERVER,
    server_env={**os.environ, "DSX_LSP_FAULT": "hover,completion,formatting"},
)
TEXT = "signature QA { in question: str out answer: str }\nprogram qa = Predict(QA)\n"


@pytest_lsp.fixture(config=FAULTY, scope="module")
async def client(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory):
    await initialize(lsp_client, tmp_path_factory.mktemp("robust"))
    yield
    await lsp_client.shutdown_session()


async def test_failing_features_are_logged_and_the_session_goes_on(
    client: LanguageClient, tmp_path: Path
):
    uri = open_doc(client, tmp_path / "a.dsx", TEXT)
    await wait_diagnostics(client, uri)
    at = pos(TEXT, "QA)", 1)
    assert (
        await client.text_document_hover_async(
            types.HoverParams(text_document=td(uri), position=at)
        )
        is None
    )
    result = await client.text_document_completion_async(
        types.CompletionParams(text_document=td(uri), position=at)
    )
    assert isinstance(result, types.CompletionList) and list(result.items) == []
    edits = await client.text_document_formatting_async(
        types.DocumentFormattingParams(
            text_document=td(uri), options=types.FormattingOptions(tab_size=4, insert_spaces=True)
        )
    )
    assert list(edits or []) == []
    errors = [m.message for m in client.log_messages if m.type == types.MessageType.Error]
    for feature in ("hover", "completion", "formatting"):
        assert any(f"internal error in {feature}" in m for m in errors), errors
    # Other features keep working, and so do diagnostics after an edit.
    defs = await client.text_document_definition_async(
        types.DefinitionParams(text_document=td(uri), position=at)
    )
    assert defs and defs[0].range.start == pos(TEXT, "QA")  # type: ignore[index]
    replace_all(client, uri, 2, TEXT.replace("(QA)", "(Q)"))
    await wait_diagnostics(client, uri, lambda d: any(x.code == "DSX104" for x in d))


HOSTILE = {
    "deep_if": "module M {\n forward(q: str) {\n"
    + "if true {\n" * 3000
    + "return q\n"
    + "}\n" * 3000
    + "}\n}\n",
    "deep_list": "program p = Predict(" + "[" * 3000 + "]" * 3000 + ")\n",
    "long_string": 'signature S { in q: str out a: str "' + "x" * 100_000 + '" }\n',
    "control_chars": "signature S\x00\x01 { in q: str }\x7f",
    "lone_surrogate": 'signature S { in q: str "\ud800" out a: str }\nprogram p = Predict(S)\n',
    "emoji": "/// 😀\nsignature S { in q😀: str out a: str }\nprogram p = Predict(S)\n",
    "unterminated": 'signature S { in q: str "abc\n out a: """ abc',
    "old_mac_newlines": "signature S {\r in q: str\r out a: str\r}\rprogram p = Predict(S)",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
async def test_hostile_documents(client: LanguageClient, tmp_path: Path, name: str):
    text = HOSTILE[name]
    uri = open_doc(client, tmp_path / f"{name}.dsx", text)
    await wait_diagnostics(client, uri)
    position = types.Position(line=1, character=3)
    await client.text_document_definition_async(
        types.DefinitionParams(text_document=td(uri), position=position)
    )
    await client.text_document_document_symbol_async(
        types.DocumentSymbolParams(text_document=td(uri))
    )
    await client.text_document_semantic_tokens_full_async(
        types.SemanticTokensParams(text_document=td(uri))
    )
    await client.text_document_code_lens_async(types.CodeLensParams(text_document=td(uri)))
    await client.text_document_references_async(
        types.ReferenceParams(
            text_document=td(uri),
            position=position,
            context=types.ReferenceContext(include_declaration=True),
        )
    )
    # still alive and answering
    assert await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="")) is not None
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=td(uri)))


async def test_changes_to_unknown_documents_are_ignored(client: LanguageClient):
    replace_all(client, "file:///nowhere/never-opened.dsx", 3, "garbage {{{")
    assert await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="x")) is not None
