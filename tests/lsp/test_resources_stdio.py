"""`lm` and `retriever` declarations over a real LSP session on stdio (issue 16 item 3,
issue 19 item 4): a typo in an LM setting is a located DSX140 with its quick fix, hover on
a used LM shows where its prompts go, and completion offers settings from the registry."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient

from ._helpers import CONFIG, initialize, open_doc, pos, td, wait_diagnostics

pytestmark = [pytest.mark.lsp, pytest.mark.asyncio(loop_scope="module")]

TEXT = """\
lm fast = "openai/gpt-4o-mini" { temprature = 0 }
lm local = "openai/llama" { api_base = "http://10.1.2.3:8000/v1" }
lm robust = fallback(fast, local) { retries = 1 }

signature QA {
    in  question: str
    out answer: str
}

program qa = Predict(QA, lm = robust)
"""


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def client(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory):
    await initialize(lsp_client, tmp_path_factory.mktemp("res"))
    yield
    await lsp_client.shutdown_session()


async def test_diagnostic_hover_and_completion(
    client: LanguageClient, tmp_path_factory: pytest.TempPathFactory
):
    path = Path(tmp_path_factory.mktemp("doc")) / "res.dsx"
    path.write_text(TEXT)
    uri = open_doc(client, path, TEXT)
    diags = await wait_diagnostics(client, uri)
    (typo,) = [d for d in diags if d.code == "DSX140"]
    assert "did you mean `temperature`" in typo.message
    assert typo.range == types.Range(
        start=types.Position(line=0, character=33), end=types.Position(line=0, character=43)
    )

    h = await client.text_document_hover_async(
        types.HoverParams(text_document=td(uri), position=pos(TEXT, "local)", 1))
    )
    assert h is not None and isinstance(h.contents, types.MarkupContent)
    assert 'api_base = "http://10.1.2.3:8000/v1"' in h.contents.value

    done = await client.text_document_completion_async(
        types.CompletionParams(text_document=td(uri), position=pos(TEXT, "{ retries", 2))
    )
    assert done is not None
    items = done.items if isinstance(done, types.CompletionList) else done
    assert [i.label for i in items] == ["retries"]
