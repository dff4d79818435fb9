"""Pull diagnostics (for clients that ask for them) and the TCP transport."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient
from pytest_lsp.client import make_test_lsp_client

from ._helpers import (
    CONFIG,
    SERVER,
    initialize,
    open_doc,
    pos,
    replace_all,
    server_capabilities,
    td,
    wait_diagnostics,
)

pytestmark = [pytest.mark.lsp, pytest.mark.asyncio(loop_scope="module")]

LIB = "signature QA { in question: str out answer: str }\n"
APP = 'import "lib.dsx"\nprogram qa = Predict(QA)\ntest t for qa {\n    given question = "q"\n    expect answer = "a"\n}\n'


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pull")
    (root / "lib.dsx").write_text(LIB)
    (root / "app.dsx").write_text(APP)
    return root


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def client(lsp_client: LanguageClient, workspace: Path):
    await initialize(lsp_client, workspace, pull=True)
    yield
    await lsp_client.shutdown_session()


async def test_pull_diagnostics(client: LanguageClient, workspace: Path):
    caps = server_capabilities(client)
    assert isinstance(caps.diagnostic_provider, types.DiagnosticOptions)
    assert caps.diagnostic_provider.inter_file_dependencies
    app = open_doc(client, workspace / "app.dsx")
    lib = open_doc(client, workspace / "lib.dsx")
    report = await client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(text_document=td(app))
    )
    assert isinstance(report, types.RelatedFullDocumentDiagnosticReport)
    assert list(report.items) == [] and report.result_id
    # Nothing changed: the server says so.
    again = await client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(text_document=td(app), previous_result_id=report.result_id)
    )
    assert isinstance(again, types.RelatedUnchangedDocumentDiagnosticReport)
    # An unsaved edit of the imported file: the client is asked to pull again, and app's
    # report shows the new error.
    refreshes = client.diagnostic_refresh_count
    replace_all(client, lib, 2, LIB.replace("out answer", "out reply"))
    for _ in range(200):
        if client.diagnostic_refresh_count > refreshes:
            break
        await asyncio.sleep(0.02)
    assert client.diagnostic_refresh_count > refreshes
    report = await client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(text_document=td(app), previous_result_id=report.result_id)
    )
    assert isinstance(report, types.RelatedFullDocumentDiagnosticReport)
    assert [d.code for d in report.items] == ["DSX124"]
    # In pull mode nothing is pushed.
    assert app not in client.diagnostics


async def test_push_mode_can_be_forced(tmp_path: Path):
    lsp = make_test_lsp_client()
    await lsp.start_io(*SERVER)
    try:
        await initialize(lsp, tmp_path, pull=True, options={"diagnosticMode": "push"})
        uri = open_doc(lsp, tmp_path / "x.dsx", "program p = Predict(Nope)\n")
        diags = await wait_diagnostics(lsp, uri, lambda d: len(d) > 0)
        assert diags[0].code == "DSX104"
        await lsp.shutdown_session()
    finally:
        await lsp.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_tcp_transport(tmp_path: Path):
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        *SERVER,
        "--tcp",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        line = await asyncio.wait_for(proc.stderr.readline(), timeout=30)
        assert b"listening on 127.0.0.1" in line
        lsp = make_test_lsp_client()
        for _ in range(100):
            try:
                await lsp.start_tcp("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        await initialize(lsp, tmp_path)
        text = "signature S { in q: str out a: str }\nprogram p = Predict(S)\n"
        uri = open_doc(lsp, tmp_path / "t.dsx", text)
        assert list(await wait_diagnostics(lsp, uri)) == []
        hover = await lsp.text_document_hover_async(
            types.HoverParams(text_document=td(uri), position=pos(text, "S)", 0))
        )
        assert hover is not None and "signature S" in hover.contents.value  # type: ignore[union-attr]
        await lsp.shutdown_async(None)
        lsp.exit(None)
        await lsp.stop()
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
