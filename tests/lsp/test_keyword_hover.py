"""Hover on the loop and test keywords over stdio: `while`, a loop's `max` bound (not the
built-in `max(...)`), `break`, `continue`, `is`, and a test's `reply` (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient

from ._helpers import CONFIG, initialize, open_doc, pos, td, wait_diagnostics

pytestmark = [pytest.mark.lsp, pytest.mark.asyncio(loop_scope="module")]

TEXT = """\
signature S {
    in  q: str
    out a: str
}

module Loop {
    p = Predict(S)
    forward(q: str) {
        n = 0
        while n < max(3, 2) max 10 {
            n += 1
            if q is none {
                break
            }
            if n == 2 {
                continue
            }
        }
        return p(q = q)
    }
}

program loop = Loop()

test t for loop {
    given q = "x"
    reply {a = "y"}
}
"""


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def client(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory):
    await initialize(lsp_client, tmp_path_factory.mktemp("kw"))
    yield
    await lsp_client.shutdown_session()


async def _hover(client: LanguageClient, uri: str, needle: str, offset: int) -> str:
    h = await client.text_document_hover_async(
        types.HoverParams(text_document=td(uri), position=pos(TEXT, needle, offset))
    )
    assert h is not None and isinstance(h.contents, types.MarkupContent), needle
    return h.contents.value


async def test_keyword_hovers(client: LanguageClient, tmp_path_factory: pytest.TempPathFactory):
    path = Path(tmp_path_factory.mktemp("doc")) / "loop.dsx"
    path.write_text(TEXT)
    uri = open_doc(client, path, TEXT)
    await wait_diagnostics(client, uri)
    assert "at most `N` times" in await _hover(client, uri, "while n", 2)
    assert "the bound" in await _hover(client, uri, "max 10", 1)
    assert "built-in function" in await _hover(client, uri, "max(3", 1)
    assert "leave the innermost" in await _hover(client, uri, "break", 2)
    assert "skip to the next run" in await _hover(client, uri, "continue", 2)
    assert "is none" in await _hover(client, uri, "is none", 1)
    assert "scripted reply" in await _hover(client, uri, "reply {", 2)
