"""Helpers for the language-server tests: starting a client, waiting for diagnostics,
finding positions in text."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

SERVER = [sys.executable, "-m", "dsx.lsp"]
CONFIG = ClientServerConfig(server_command=SERVER)


def capabilities(*, pull: bool = False, snippets: bool = True) -> types.ClientCapabilities:
    """What an editor like VS Code declares (pull diagnostics only when asked)."""
    return types.ClientCapabilities(
        general=types.GeneralClientCapabilities(position_encodings=["utf-16"]),
        workspace=types.WorkspaceClientCapabilities(
            workspace_folders=True,
            symbol=types.WorkspaceSymbolClientCapabilities(),
            diagnostics=types.DiagnosticWorkspaceClientCapabilities(refresh_support=True)
            if pull
            else None,
        ),
        text_document=types.TextDocumentClientCapabilities(
            synchronization=types.TextDocumentSyncClientCapabilities(did_save=True),
            completion=types.CompletionClientCapabilities(
                completion_item=types.ClientCompletionItemOptions(
                    snippet_support=snippets,
                    documentation_format=[types.MarkupKind.Markdown, types.MarkupKind.PlainText],
                )
            ),
            hover=types.HoverClientCapabilities(content_format=[types.MarkupKind.Markdown]),
            rename=types.RenameClientCapabilities(prepare_support=True),
            document_symbol=types.DocumentSymbolClientCapabilities(
                hierarchical_document_symbol_support=True
            ),
            publish_diagnostics=types.PublishDiagnosticsClientCapabilities(
                related_information=True, version_support=True
            ),
            diagnostic=types.DiagnosticClientCapabilities(related_document_support=True)
            if pull
            else None,
            semantic_tokens=types.SemanticTokensClientCapabilities(
                requests=types.ClientSemanticTokensRequestOptions(full=True),
                token_types=[],
                token_modifiers=[],
                formats=[types.TokenFormat.Relative],
            ),
        ),
    )


async def initialize(
    client: LanguageClient,
    root: Path,
    *,
    pull: bool = False,
    options: dict[str, Any] | None = None,
) -> types.InitializeResult:
    result = await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(pull=pull),
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
            initialization_options={"diagnosticsDelay": 10, **(options or {})},
        )
    )
    SERVER_CAPABILITIES[id(client)] = result.capabilities
    return result


#: The capabilities each test client's server answered ``initialize`` with.
SERVER_CAPABILITIES: dict[int, types.ServerCapabilities] = {}


def server_capabilities(client: LanguageClient) -> types.ServerCapabilities:
    return SERVER_CAPABILITIES[id(client)]


def open_doc(client: LanguageClient, path: Path, text: str | None = None, version: int = 1) -> str:
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri,
                language_id="dsx",
                version=version,
                text=path.read_text() if text is None else text,
            )
        )
    )
    return uri


def change(
    client: LanguageClient, uri: str, version: int, edits: Sequence[tuple[types.Range, str]]
) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(range=rng, text=new) for rng, new in edits
            ],
        )
    )


def replace_all(client: LanguageClient, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


async def wait_diagnostics(
    client: LanguageClient,
    uri: str,
    predicate: Callable[[Sequence[types.Diagnostic]], bool] = lambda _: True,
    *,
    timeout: float = 15.0,
) -> Sequence[types.Diagnostic]:
    """Wait until the diagnostics published for ``uri`` satisfy ``predicate``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = client.diagnostics.get(uri)
        if found is not None and predicate(found):
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no matching diagnostics for {uri}; last: {found!r}")
        await asyncio.sleep(0.02)


def pos(text: str, needle: str, delta: int = 0, *, nth: int = 0) -> types.Position:
    """The LSP position of the ``nth`` occurrence of ``needle`` (plus ``delta`` chars);
    ASCII test texts, so characters are UTF-16 units."""
    index = -1
    for _ in range(nth + 1):
        index = text.index(needle, index + 1)
    index += delta
    line = text.count("\n", 0, index)
    col = index - (text.rfind("\n", 0, index) + 1)
    return types.Position(line=line, character=col)


def rng(text: str, needle: str, *, nth: int = 0) -> types.Range:
    start = pos(text, needle, nth=nth)
    return types.Range(start=start, end=pos(text, needle, len(needle), nth=nth))


def td(uri: str) -> types.TextDocumentIdentifier:
    return types.TextDocumentIdentifier(uri=uri)


def apply_edits(text: str, edits: Sequence[types.TextEdit]) -> str:
    """Apply LSP text edits (ASCII text) to ``text``."""
    lines = text.split("\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)

    def off(p: types.Position) -> int:
        if p.line >= len(starts):
            return len(text)
        return min(starts[p.line] + p.character, len(text))

    out = text
    for edit in sorted(
        edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True
    ):
        out = out[: off(edit.range.start)] + edit.new_text + out[off(edit.range.end) :]
    return out
