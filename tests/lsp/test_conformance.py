"""JSON-RPC and LSP conformance: malformed and out-of-order traffic gets the error answers
the specifications name, the session goes on, and ``exit`` ends the process with the
right status. Raw stdio (``_raw.RawClient``): a typed client cannot send such messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types

from ._helpers import pos
from ._raw import RawClient, error_code

pytestmark = [pytest.mark.lsp, pytest.mark.asyncio(loop_scope="module")]

TEXT = "signature QA { in question: str out answer: str }\nprogram qa = Predict(QA)\n"

INVALID_PARAMS = -32602
INVALID_REQUEST = -32600
PARSE_ERROR = -32700
SERVER_NOT_INITIALIZED = -32002
METHOD_NOT_FOUND = -32601


def _hover(uri: str, position: Any) -> dict[str, Any]:
    return {"textDocument": {"uri": uri}, "position": position}


# ---- invalid params: one session, each request answered, the session goes on -----------
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def raw_session(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("conformance")
    raw = await RawClient.start()
    await raw.initialize(root)
    yield raw, root
    try:
        await raw.call(types.SHUTDOWN)
        raw.notify(types.EXIT)
        assert await raw.wait() == 0
    finally:
        await raw.kill()


def _open(raw: RawClient, path: Path, text: str) -> str:
    uri = path.as_uri()
    raw.notify(
        types.TEXT_DOCUMENT_DID_OPEN,
        {"textDocument": {"uri": uri, "languageId": "dsx", "version": 1, "text": text}},
    )
    return uri


@pytest.mark.parametrize(
    ("params", "where"),
    [
        (_hover("URI", {"line": -1, "character": 0}), "line"),
        (_hover("URI", {"line": 0, "character": -3}), "character"),
        ({"textDocument": {"uri": "URI"}}, "position"),
        (_hover("URI", {"line": "zero", "character": 0}), "line"),
        (_hover("URI", [0, 0]), "position"),
        ({"textDocument": "URI", "position": {"line": 0, "character": 0}}, "params.textDocument"),
        (None, "params"),
        ([1, 2], "params"),
    ],
    ids=[
        "negative-line",
        "negative-character",
        "missing-position",
        "string-line",
        "array-position",
        "string-document",
        "null-params",
        "array-params",
    ],
)
async def test_invalid_params_get_an_error_response(
    raw_session: tuple[RawClient, Path], params: Any, where: str
):
    raw, root = raw_session
    uri = _open(raw, root / "a.dsx", TEXT)
    answer = await raw.call(types.TEXT_DOCUMENT_HOVER, _replace_uri(params, uri))
    assert error_code(answer) == INVALID_PARAMS
    assert where in answer["error"]["message"]  # says what was wrong, in the client's names
    # The session goes on.
    at = pos(TEXT, "QA)", 1)
    good = {"line": at.line, "character": at.character}
    answer = await raw.call(types.TEXT_DOCUMENT_HOVER, _hover(uri, good))
    assert "QA" in answer["result"]["contents"]["value"]


async def test_invalid_params_in_other_requests(raw_session: tuple[RawClient, Path]):
    raw, root = raw_session
    uri = _open(raw, root / "b.dsx", TEXT)
    bad_range = {"start": {"line": 0, "character": 0}, "end": {"line": -5, "character": 0}}
    cases = [
        (types.TEXT_DOCUMENT_COMPLETION, {"textDocument": {"uri": uri}}),
        (types.TEXT_DOCUMENT_DEFINITION, _hover(uri, {"line": 0})),
        (
            types.TEXT_DOCUMENT_RENAME,
            {**_hover(uri, {"line": 0, "character": 10}), "newName": 7},
        ),
        (
            types.TEXT_DOCUMENT_CODE_ACTION,
            {"textDocument": {"uri": uri}, "range": bad_range, "context": {"diagnostics": []}},
        ),
        (types.TEXT_DOCUMENT_DOCUMENT_SYMBOL, {"textDocument": {"uri": 42}}),
        (types.WORKSPACE_SYMBOL, {"query": ["QA"]}),
    ]
    for method, params in cases:
        answer = await raw.call(method, params)
        assert error_code(answer) == INVALID_PARAMS, (method, answer)
    answer = await raw.call(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL, {"textDocument": {"uri": uri}})
    assert answer["result"][0]["name"] == "QA"


def _replace_uri(value: Any, uri: str) -> Any:
    if value == "URI":
        return uri
    if isinstance(value, dict):
        return {k: _replace_uri(v, uri) for k, v in value.items()}
    return value


# ---- raw stdio: what a typed client cannot send ----------------------------------------------
async def test_requests_before_initialize(tmp_path: Path):
    raw = await RawClient.start()
    try:
        uri = (tmp_path / "x.dsx").as_uri()
        answer = await raw.call(types.TEXT_DOCUMENT_HOVER, _hover(uri, {"line": 0, "character": 0}))
        assert error_code(answer) == SERVER_NOT_INITIALIZED
        assert "initialize" in answer["error"]["message"]
        # Unknown methods and shutdown too; notifications are dropped without an answer.
        raw.notify(types.INITIALIZED, {})
        answer = await raw.call("dsx/nothing", {})
        assert error_code(answer) == SERVER_NOT_INITIALIZED
        answer = await raw.call(types.SHUTDOWN)
        assert error_code(answer) == SERVER_NOT_INITIALIZED
        # Then initialize works, and a second one is refused.
        answer = await raw.initialize(tmp_path)
        assert "capabilities" in answer["result"]
        answer = await raw.call(types.INITIALIZE, {"processId": None, "capabilities": {}})
        assert error_code(answer) == INVALID_REQUEST
        assert (await raw.call(types.SHUTDOWN))["result"] is None
        raw.notify(types.EXIT)
        assert await raw.wait() == 0
        # Nothing was answered that was not asked: only logs and no stray responses.
        assert all("id" not in n for n in raw.notifications)
    finally:
        await raw.kill()


async def test_requests_after_shutdown(tmp_path: Path):
    raw = await RawClient.start()
    try:
        await raw.initialize(tmp_path)
        uri = (tmp_path / "x.dsx").as_uri()
        assert (await raw.call(types.SHUTDOWN))["result"] is None
        answer = await raw.call(types.TEXT_DOCUMENT_HOVER, _hover(uri, {"line": 0, "character": 0}))
        assert error_code(answer) == INVALID_REQUEST
        assert "shut down" in answer["error"]["message"]
        answer = await raw.call(types.SHUTDOWN)
        assert error_code(answer) == INVALID_REQUEST
        raw.notify(types.EXIT)
        assert await raw.wait() == 0
    finally:
        await raw.kill()


@pytest.mark.parametrize("initialized", [True, False], ids=["after-initialize", "at-once"])
async def test_exit_without_shutdown_exits_1(tmp_path: Path, initialized: bool):
    raw = await RawClient.start()
    try:
        if initialized:
            await raw.initialize(tmp_path)
        raw.notify(types.EXIT)
        assert await raw.wait() == 1
    finally:
        await raw.kill()


async def test_bodies_that_are_not_json_rpc(tmp_path: Path):
    raw = await RawClient.start()
    try:
        await raw.initialize(tmp_path)
        for body in [b"{not json", b'{"jsonrpc": "2.0", "id": 1, "method": ', b"\xff\xfe{}"]:
            raw.send_body(body)
            answer = await raw.response(None)
            assert error_code(answer) == PARSE_ERROR, body
        for message in [[1, 2], 42, "hello", None, {"id": 3, "method": "shutdown"}, {}]:
            raw.send(message)
            answer = await raw.response(3 if isinstance(message, dict) and message else None)
            assert error_code(answer) == INVALID_REQUEST, message
        raw.send({"jsonrpc": "2.0", "id": {"no": 1}, "method": "shutdown"})
        assert error_code(await raw.response(None)) == INVALID_REQUEST
        raw.send({"jsonrpc": "2.0", "id": 4, "method": 12})
        assert error_code(await raw.response(4)) == INVALID_REQUEST
        raw.send({"jsonrpc": "1.0", "id": 5, "method": "shutdown"})
        assert error_code(await raw.response(5)) == INVALID_REQUEST
        # Too deeply nested for the reader: a parse error, not a crash.
        raw.send_body(b"[" * 100_000 + b"]" * 100_000)
        assert error_code(await raw.response(None)) == PARSE_ERROR
        # The session goes on.
        answer = await raw.call(types.WORKSPACE_SYMBOL, {"query": ""})
        assert answer["result"] == []
        assert (await raw.call(types.SHUTDOWN))["result"] is None
        raw.notify(types.EXIT)
        assert await raw.wait() == 0
    finally:
        await raw.kill()


async def test_malformed_and_out_of_order_traffic(tmp_path: Path):
    """One session through a script of hostile traffic; each request gets its answer, in
    the order the specifications ask, and the documents stay right throughout."""
    raw = await RawClient.start()
    try:
        doc = tmp_path / "a.dsx"
        uri = doc.as_uri()
        # Before initialize: didOpen is dropped, so the document is not open afterwards.
        raw.notify(
            types.TEXT_DOCUMENT_DID_OPEN,
            {"textDocument": {"uri": uri, "languageId": "dsx", "version": 1, "text": "junk"}},
        )
        await raw.initialize(tmp_path)
        # Malformed notifications are dropped (never answered), the session goes on.
        raw.notify(types.TEXT_DOCUMENT_DID_OPEN, {"textDocument": {"uri": uri}})
        raw.notify(types.TEXT_DOCUMENT_DID_CHANGE, {"textDocument": {"uri": uri, "version": 2}})
        raw.notify("$/cancelRequest", {"id": "never-sent"})
        raw.notify("$/unknownNotification", {})
        raw.notify(types.TEXT_DOCUMENT_DID_CLOSE, {"textDocument": {"uri": uri}})
        # Now a well-formed open: diagnostics arrive for its text (not for "junk").
        raw.notify(
            types.TEXT_DOCUMENT_DID_OPEN,
            {"textDocument": {"uri": uri, "languageId": "dsx", "version": 1, "text": TEXT}},
        )
        at = pos(TEXT, "QA)", 1)
        good = {"line": at.line, "character": at.character}
        ids = {
            "bad-line": raw.request(types.TEXT_DOCUMENT_HOVER, _hover(uri, {"line": -1})),
            "unknown": raw.request("dsx/doesNotExist", {}),
            "good": raw.request(types.TEXT_DOCUMENT_HOVER, _hover(uri, good)),
            "missing": raw.request(types.TEXT_DOCUMENT_HOVER, omit_params=True),
            "past-end": raw.request(
                types.TEXT_DOCUMENT_HOVER, _hover(uri, {"line": 999, "character": 999})
            ),
        }
        raw.send_body(b"\x00garbage")
        answers = {name: await raw.response(msg_id) for name, msg_id in ids.items()}
        assert error_code(await raw.response(None)) == PARSE_ERROR
        assert error_code(answers["bad-line"]) == INVALID_PARAMS
        assert error_code(answers["unknown"]) == METHOD_NOT_FOUND
        assert "QA" in answers["good"]["result"]["contents"]["value"]
        assert error_code(answers["missing"]) == INVALID_PARAMS
        assert answers["past-end"] == {"jsonrpc": "2.0", "id": ids["past-end"], "result": None}
        # A response to a request the server never sent is ignored.
        raw.send({"jsonrpc": "2.0", "id": "unknown-id", "result": None})
        raw.send({"jsonrpc": "2.0", "id": "unknown-id-2", "error": {"code": 1, "message": "x"}})
        symbols = await raw.call(
            types.TEXT_DOCUMENT_DOCUMENT_SYMBOL, {"textDocument": {"uri": uri}}
        )
        assert [s["name"] for s in symbols["result"]] == ["QA", "qa"]
        published = [
            n
            for n in raw.notifications
            if n["method"] == types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS
            and n["params"]["uri"] == uri
            and n["params"]["diagnostics"]
        ]
        assert not published  # "junk" was never opened
        assert (await raw.call(types.SHUTDOWN))["result"] is None
        raw.notify(types.TEXT_DOCUMENT_DID_CHANGE, {"bad": True})  # dropped after shutdown
        raw.notify(types.EXIT)
        assert await raw.wait() == 0
    finally:
        await raw.kill()
