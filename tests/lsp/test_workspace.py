"""Multi-file workspaces: imports, navigation and rename across files (open or not),
unsaved edits of one file seen by the files importing it, files changed on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient

from ._helpers import (
    CONFIG,
    apply_edits,
    initialize,
    open_doc,
    pos,
    replace_all,
    td,
    wait_diagnostics,
)

pytestmark = [pytest.mark.lsp, pytest.mark.asyncio(loop_scope="module")]

LIB = """/// Answer briefly.
signature QA {
    in  question: str
    out answer: str "a few words"
}
"""
APP = """import "lib.dsx"

module Bot {
    qa = Predict(QA)

    forward(question: str) {
        pred = qa(question = question)
        return pred
    }
}

program bot = Bot()

test t for bot {
    given  question = "What is 2 + 2?"
    expect answer = "4"
}
"""
OTHER = """import "lib.dsx"

program direct = Predict(QA)

test d for direct {
    given  question = "x"
    expect answer = "y"
}
"""
UNRELATED = """signature QA {
    in  question: str
    out answer: str
}

program solo = Predict(QA)
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("multi")
    (root / "lib.dsx").write_text(LIB)
    (root / "app.dsx").write_text(APP)
    (root / "sub").mkdir()
    (root / "sub" / "other.dsx").write_text(OTHER.replace('"lib.dsx"', '"../lib.dsx"'))
    (root / "unrelated").mkdir()
    (root / "unrelated" / "solo.dsx").write_text(UNRELATED)
    (root / "node_modules").mkdir()
    (root / "node_modules" / "ignored.dsx").write_text(UNRELATED)
    return root


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def client(lsp_client: LanguageClient, workspace: Path):
    await initialize(lsp_client, workspace)
    yield
    await lsp_client.shutdown_session()


@pytest.fixture(scope="module")
def app_uri(workspace: Path) -> str:
    return (workspace / "app.dsx").as_uri()


async def test_imported_names_resolve(client: LanguageClient, workspace: Path, app_uri: str):
    open_doc(client, workspace / "app.dsx")
    assert list(await wait_diagnostics(client, app_uri)) == []
    defs = await client.text_document_definition_async(
        types.DefinitionParams(text_document=td(app_uri), position=pos(APP, "QA)", 1))
    )
    assert defs and defs[0].uri == (workspace / "lib.dsx").as_uri()  # type: ignore[index]
    assert defs[0].range.start == pos(LIB, "QA")  # type: ignore[index]
    # go to the imported file from the import string
    defs = await client.text_document_definition_async(
        types.DefinitionParams(text_document=td(app_uri), position=pos(APP, "lib.dsx", 2))
    )
    assert defs and defs[0].uri == (workspace / "lib.dsx").as_uri()  # type: ignore[index]
    hover = await client.text_document_hover_async(
        types.HoverParams(text_document=td(app_uri), position=pos(APP, "QA)", 1))
    )
    assert hover is not None and "Answer briefly." in hover.contents.value  # type: ignore[union-attr]


async def test_references_span_the_workspace(client: LanguageClient, workspace: Path, app_uri: str):
    refs = await client.text_document_references_async(
        types.ReferenceParams(
            text_document=td(app_uri),
            position=pos(APP, "QA)", 1),
            context=types.ReferenceContext(include_declaration=True),
        )
    )
    found = sorted((Path(r.range and r.uri[7:]).name, r.range.start.line) for r in refs or [])
    assert found == [("app.dsx", 3), ("lib.dsx", 1), ("other.dsx", 2)]


async def test_rename_field_across_open_and_closed_files(
    client: LanguageClient, workspace: Path, app_uri: str
):
    edit = await client.text_document_rename_async(
        types.RenameParams(
            text_document=td(app_uri), position=pos(APP, "question = question", 1), new_name="query"
        )
    )
    assert edit is not None and edit.changes is not None
    by_file = {Path(uri[7:]).name: edits for uri, edits in edit.changes.items()}
    assert set(by_file) == {"lib.dsx", "app.dsx", "other.dsx"}
    assert "in  query: str" in apply_edits(LIB, by_file["lib.dsx"])
    new_app = apply_edits(APP, by_file["app.dsx"])
    # the call's keyword changes; the forward parameter (and the test's `given`, which
    # names that parameter) do not
    assert "qa(query = question)" in new_app
    assert "forward(question: str)" in new_app and "given  question =" in new_app
    other = (workspace / "sub" / "other.dsx").read_text()
    assert "given  query =" in apply_edits(other, by_file["other.dsx"])


async def test_rename_top_level_leaves_unrelated_file_alone(
    client: LanguageClient, workspace: Path, app_uri: str
):
    edit = await client.text_document_rename_async(
        types.RenameParams(text_document=td(app_uri), position=pos(APP, "QA)", 1), new_name="Ask")
    )
    assert edit is not None and edit.changes is not None
    names = sorted(Path(uri[7:]).name for uri in edit.changes)
    assert names == ["app.dsx", "lib.dsx", "other.dsx"]


async def test_workspace_symbols_skip_ignored_dirs(client: LanguageClient):
    found = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query="QA"))
    files = sorted(Path(s.location.uri[7:]).name for s in found or [] if s.name == "QA")  # type: ignore[union-attr]
    assert files == ["lib.dsx", "solo.dsx"]


async def test_unsaved_edit_of_an_import_updates_importers(
    client: LanguageClient, workspace: Path, app_uri: str
):
    lib_uri = open_doc(client, workspace / "lib.dsx")
    await wait_diagnostics(client, lib_uri)
    # Rename the output in lib.dsx without saving: app's `expect answer` is now wrong.
    replace_all(client, lib_uri, 2, LIB.replace("out answer", "out reply"))
    diags = await wait_diagnostics(client, app_uri, lambda d: any(x.code == "DSX124" for x in d))
    assert "answer" in next(x for x in diags if x.code == "DSX124").message
    # A syntax error in lib.dsx shows on app's import line.
    replace_all(client, lib_uri, 3, LIB.replace("in  question: str", "in  question str"))
    diags = await wait_diagnostics(
        client, app_uri, lambda d: any("lib.dsx has 1 error" in x.message for x in d)
    )
    note = next(x for x in diags if "lib.dsx has" in x.message)
    assert note.range.start == pos(APP, '"lib.dsx"')
    # Closing lib.dsx without saving: app reads it from disk again.
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=td(lib_uri)))
    await wait_diagnostics(client, app_uri, lambda d: len(d) == 0)


async def test_file_changed_on_disk(client: LanguageClient, workspace: Path):
    # Its own folder: rewriting the module-scoped workspace's lib.dsx would make the other
    # tests depend on this one restoring it (issue 17, order dependence).
    folder = workspace / "on_disk"
    folder.mkdir()
    lib = folder / "lib.dsx"
    lib.write_text(LIB)
    app = folder / "app.dsx"
    app.write_text(APP)
    app_uri = open_doc(client, app)
    await wait_diagnostics(client, app_uri, lambda d: len(d) == 0)
    lib.write_text(LIB.replace("out answer", "out result"))
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[types.FileEvent(uri=lib.as_uri(), type=types.FileChangeType.Changed)]
        )
    )
    await wait_diagnostics(client, app_uri, lambda d: any(x.code == "DSX124" for x in d))
    assert (workspace / "lib.dsx").read_text() == LIB  # the shared workspace is untouched
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=td(app_uri)))


async def test_missing_import(client: LanguageClient, workspace: Path):
    path = workspace / "broken_import.dsx"
    text = 'import "missing.dsx"\nprogram p = Predict("q -> a")\n'
    uri = open_doc(client, path, text)
    diags = await wait_diagnostics(client, uri, lambda d: any(x.code == "DSX120" for x in d))
    assert next(x for x in diags if x.code == "DSX120").range.start == pos(text, '"missing.dsx"')
