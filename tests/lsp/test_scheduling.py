"""Request scheduling over a real stdio session: cheap requests are answered before queued
expensive ones, ``$/cancelRequest`` cancels a queued request (-32800), a request whose
document changed while it waited is answered ContentModified (-32801), and semantic tokens
come whole, for a range, or as a delta that rebuilds the current tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from ._raw import RawClient, error_code

TEXT = """\
signature QA {
    in  question: str
    out answer: str
}

module Pipeline {
    qa = Predict(QA)

    forward(question: str) {
        pred = qa(question = question)
        return pred
    }
}

program main = Pipeline()
"""
ADDED = """
signature Extra {
    in  topic: str
    out summary: str
}
"""


@pytest_asyncio.fixture
async def raw(tmp_path: Path):
    client = await RawClient.start()
    answer = await client.call(
        "initialize",
        {
            "processId": None,
            "rootUri": tmp_path.as_uri(),
            "capabilities": {
                "textDocument": {
                    "semanticTokens": {
                        "requests": {"full": {"delta": True}, "range": True},
                        "tokenTypes": [],
                        "tokenModifiers": [],
                        "formats": ["relative"],
                    }
                }
            },
            "initializationOptions": {"diagnosticsDelay": 10},
        },
    )
    client.capabilities = answer["result"]["capabilities"]  # type: ignore[attr-defined]
    client.notify("initialized", {})
    yield client
    await client.kill()


def _open(raw: RawClient, path: Path, text: str = TEXT) -> str:
    path.write_text(text)
    uri = path.as_uri()
    raw.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "dsx", "version": 1, "text": text}},
    )
    return uri


def _request(raw: RawClient, method: str, params: Any) -> tuple[int, dict[str, Any]]:
    msg_id = raw.next_id()
    return msg_id, {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}


def _append(uri: str, version: int, line: int, text: str) -> dict[str, Any]:
    at = {"line": line, "character": 0}
    return {
        "jsonrpc": "2.0",
        "method": "textDocument/didChange",
        "params": {
            "textDocument": {"uri": uri, "version": version},
            "contentChanges": [{"range": {"start": at, "end": at}, "text": text}],
        },
    }


async def _answers(raw: RawClient, ids: set[int]) -> list[dict[str, Any]]:
    """The answers to ``ids`` in the order they arrive."""
    out = []
    while len(out) < len(ids):
        message = await raw.read()
        if message.get("id") in ids and "method" not in message:
            out.append(message)
    return out


def _decode(data: list[int]) -> list[tuple[int, int, int, int, int]]:
    out, line, char = [], 0, 0
    for i in range(0, len(data), 5):
        dl, dc, length, kind, mods = data[i : i + 5]
        line += dl
        char = char + dc if dl == 0 else dc
        out.append((line, char, length, kind, mods))
    return out


def _encode(tokens: list[tuple[int, int, int, int, int]]) -> list[int]:
    out: list[int] = []
    pl = pc = 0
    for line, char, length, kind, mods in tokens:
        out += [line - pl, char - pc if line == pl else char, length, kind, mods]
        pl, pc = line, char
    return out


def _apply(data: list[int], edits: list[dict[str, Any]]) -> list[int]:
    out = list(data)
    for edit in sorted(edits, key=lambda e: e["start"], reverse=True):
        out[edit["start"] : edit["start"] + edit["deleteCount"]] = edit.get("data", [])
    return out


async def test_the_server_offers_semantic_token_ranges_and_deltas(raw: RawClient):
    provider = raw.capabilities["semanticTokensProvider"]  # type: ignore[attr-defined]
    assert provider["full"] == {"delta": True}
    assert provider["range"] is True


async def test_a_completion_is_answered_before_queued_work(raw: RawClient, tmp_path: Path):
    uri = _open(raw, tmp_path / "a.dsx")
    doc = {"textDocument": {"uri": uri}}
    await raw.call("textDocument/documentSymbol", doc)  # the file is analysed
    symbols, sym_msg = _request(raw, "textDocument/documentSymbol", doc)
    tokens, tok_msg = _request(raw, "textDocument/semanticTokens/full", doc)
    completion, comp_msg = _request(
        raw,
        "textDocument/completion",
        {**doc, "position": {"line": 10, "character": len("        pred = qa(")}},
    )
    # What VS Code sends on a keystroke: the edit (a line above: the call is now on line
    # 10), then outline and tokens, then completion.
    raw.send_together([_append(uri, 2, 0, "// a comment\n"), sym_msg, tok_msg, comp_msg])
    order = await _answers(raw, {symbols, tokens, completion})
    assert order[0]["id"] == completion
    labels = {item["label"] for item in order[0]["result"]["items"]}
    assert "question" in labels
    assert all("result" in m for m in order)


async def test_a_cancelled_request_answers_request_cancelled(raw: RawClient, tmp_path: Path):
    uri = _open(raw, tmp_path / "a.dsx")
    doc = {"textDocument": {"uri": uri}}
    symbols, message = _request(raw, "textDocument/documentSymbol", doc)
    cancel = {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": symbols}}
    raw.send_together([message, cancel])
    answer = await raw.response(symbols)
    assert error_code(answer) == -32800, answer
    # The server goes on: the same request again is answered.
    again = await raw.call("textDocument/documentSymbol", doc)
    assert [s["name"] for s in again["result"]] == ["QA", "Pipeline", "main"]


async def test_a_request_made_stale_by_an_edit_answers_content_modified(
    raw: RawClient, tmp_path: Path
):
    uri = _open(raw, tmp_path / "a.dsx")
    doc = {"textDocument": {"uri": uri}}
    symbols, message = _request(raw, "textDocument/documentSymbol", doc)
    raw.send_together([message, _append(uri, 2, 0, ADDED)])
    answer = await raw.response(symbols)
    assert error_code(answer) == -32801, answer
    fresh = await raw.call("textDocument/documentSymbol", doc)
    assert [s["name"] for s in fresh["result"]] == ["Extra", "QA", "Pipeline", "main"]


@pytest.mark.parametrize("known", [True, False])
async def test_a_semantic_tokens_delta_rebuilds_the_current_tokens(
    raw: RawClient, tmp_path: Path, known: bool
):
    uri = _open(raw, tmp_path / "a.dsx")
    doc = {"textDocument": {"uri": uri}}
    first = (await raw.call("textDocument/semanticTokens/full", doc))["result"]
    assert first["data"] and first["resultId"]
    raw.send(_append(uri, 2, 4, ADDED))  # inside the file: tokens after it move
    previous = first["resultId"] if known else "no-such-result"
    delta = (
        await raw.call(
            "textDocument/semanticTokens/full/delta", {**doc, "previousResultId": previous}
        )
    )["result"]
    full = (await raw.call("textDocument/semanticTokens/full", doc))["result"]
    if known:
        assert "edits" in delta and delta["resultId"] != first["resultId"]
        assert _apply(first["data"], delta["edits"]) == full["data"]
        assert full["data"] != first["data"]
    else:  # an unknown (or forgotten) result: the whole tokens
        assert delta["data"] == full["data"]


async def test_semantic_tokens_for_a_range_are_the_full_tokens_on_those_lines(
    raw: RawClient, tmp_path: Path
):
    uri = _open(raw, tmp_path / "a.dsx")
    doc = {"textDocument": {"uri": uri}}
    full = _decode((await raw.call("textDocument/semanticTokens/full", doc))["result"]["data"])
    rng = {"start": {"line": 5, "character": 0}, "end": {"line": 10, "character": 0}}
    part = (await raw.call("textDocument/semanticTokens/range", {**doc, "range": rng}))["result"]
    expected = [t for t in full if 5 <= t[0] < 10]
    assert expected and part["data"] == _encode(expected)
