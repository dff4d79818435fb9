"""Language-server latency over a real stdio session on a generated 5,000-line file.

Starts ``python -m dsx.lsp`` as an editor does, opens the file and measures, from the
moment a request is written to the moment its answer is read (JSON-RPC transport
included):

* each request alone, with no edit since the last answer ("warm") and right after a
  one-line edit ("after edit");
* the VS Code pattern: a keystroke (``didChange``) immediately followed by
  ``documentSymbol``, ``semanticTokens`` and a ``completion``, all in flight together —
  the completion's latency is what the user feels (target: median <= 100 ms).

A request the server does not offer is shown as ``n/a``. ``bench/lsp.py`` measures the same
features server-side without the transport.
Run: `.venv/bin/python bench/lsp_session.py` (`--lines N`, `--reps N`, `--json`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from frontend import generate  # the same generated program as the front-end benchmark

#: What the client declares: VS Code's shape, for the features measured here.
CAPABILITIES: dict[str, Any] = {
    "general": {"positionEncodings": ["utf-16"]},
    "workspace": {"workspaceFolders": True, "symbol": {}},
    "textDocument": {
        "synchronization": {"didSave": True},
        "completion": {"completionItem": {"snippetSupport": True}},
        "hover": {"contentFormat": ["markdown"]},
        "documentSymbol": {"hierarchicalDocumentSymbolSupport": True},
        "rename": {"prepareSupport": True},
        "publishDiagnostics": {"versionSupport": True},
        "semanticTokens": {
            "requests": {"full": {"delta": True}, "range": True},
            "tokenTypes": [],
            "tokenModifiers": [],
            "formats": ["relative"],
        },
        "signatureHelp": {"signatureInformation": {"activeParameterSupport": True}},
        "foldingRange": {"lineFoldingOnly": True},
        "inlayHint": {},
    },
}


class Client:
    """A minimal JSON-RPC client over the server's stdio."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.next_id = 0
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.diagnostics: dict[str, int | None] = {}
        self.diag_event = asyncio.Event()
        self.reader = asyncio.ensure_future(self._read_loop())

    def _write(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        body = json.dumps(message).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def request(self, method: str, params: Any) -> asyncio.Future[dict[str, Any]]:
        self.next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = fut
        self._write({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        return fut

    def notify(self, method: str, params: Any) -> None:
        self._write({"jsonrpc": "2.0", "method": method, "params": params})

    async def _read_loop(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = await out.readline()
                if not line:
                    self._closed()
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            assert length is not None
            message = json.loads(await out.readexactly(length))
            if "method" in message and "id" in message:  # a server request: accept it
                self._write({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif message.get("method") == "textDocument/publishDiagnostics":
                params = message["params"]
                self.diagnostics[params["uri"]] = params.get("version")
                self.diag_event.set()
            elif "id" in message and message["id"] in self.pending:
                self.pending.pop(message["id"]).set_result(message)

    def _closed(self) -> None:
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(EOFError("the server exited (run it alone to see why)"))
        self.pending.clear()
        self.diag_event.set()

    async def call(self, method: str, params: Any) -> tuple[float, dict[str, Any]]:
        """``(seconds, answer)`` of one request alone."""
        t = time.perf_counter()
        answer = await asyncio.wait_for(self.request(method, params), 120)
        return time.perf_counter() - t, answer

    async def wait_diagnostics(self, uri: str, version: int) -> None:
        while self.diagnostics.get(uri) != version:
            if self.reader.done():
                raise EOFError("the server exited (run it alone to see why)")
            self.diag_event.clear()
            await asyncio.wait_for(self.diag_event.wait(), 60)


def _pos(lines: list[str], line: int, needle: str, after: bool = False) -> dict[str, int]:
    col = lines[line].index(needle) + (len(needle) if after else 0)
    return {"line": line, "character": col}


async def measure(lines: int, reps: int) -> dict[str, Any]:
    text = generate(lines)
    source = text.split("\n")
    tmp = Path(tempfile.mkdtemp(prefix="dsx-lsp-bench-"))
    path = tmp / "big.dsx"
    path.write_text(text)
    uri = path.as_uri()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dsx.lsp",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")},
    )
    client = Client(proc)
    init = await client.request(
        "initialize",
        {
            "processId": os.getpid(),
            "rootUri": tmp.as_uri(),
            "capabilities": CAPABILITIES,
            "workspaceFolders": [{"uri": tmp.as_uri(), "name": "bench"}],
            "initializationOptions": {"diagnosticsDelay": 150},
        },
    )
    caps = init["result"]["capabilities"]
    client.notify("initialized", {})
    t = time.perf_counter()
    client.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "dsx", "version": 1, "text": text}},
    )
    await client.wait_diagnostics(uri, 1)
    result: dict[str, Any] = {
        "lines": text.count("\n"),
        "open_ms": (time.perf_counter() - t) * 1000,
    }

    mid = len(source) // 2
    body = next(i for i in range(mid, len(source)) if "query   = rewrite(" in source[i])
    call = next(i for i in range(mid, len(source)) if "pred = answer(" in source[i])
    sig = next(i for i in range(mid, len(source)) if source[i].startswith("signature Answer"))
    sig_name = source[sig].split()[1]
    doc = {"uri": uri}
    requests: dict[str, tuple[str, dict[str, Any]]] = {
        "documentSymbol": ("textDocument/documentSymbol", {"textDocument": doc}),
        "semanticTokens/full": ("textDocument/semanticTokens/full", {"textDocument": doc}),
        "semanticTokens/range": (
            "textDocument/semanticTokens/range",
            {
                "textDocument": doc,
                "range": {
                    "start": {"line": mid, "character": 0},
                    "end": {"line": mid + 60, "character": 0},
                },
            },
        ),
        "foldingRange": ("textDocument/foldingRange", {"textDocument": doc}),
        "inlayHint (60 lines)": (
            "textDocument/inlayHint",
            {
                "textDocument": doc,
                "range": {
                    "start": {"line": mid, "character": 0},
                    "end": {"line": mid + 60, "character": 0},
                },
            },
        ),
        "formatting": (
            "textDocument/formatting",
            {"textDocument": doc, "options": {"tabSize": 4, "insertSpaces": True}},
        ),
        "rename (a signature)": (
            "textDocument/rename",
            {"textDocument": doc, "position": _pos(source, sig, sig_name), "newName": "Renamed"},
        ),
        "references (a signature)": (
            "textDocument/references",
            {
                "textDocument": doc,
                "position": _pos(source, sig, sig_name),
                "context": {"includeDeclaration": True},
            },
        ),
        "hover": (
            "textDocument/hover",
            {"textDocument": doc, "position": _pos(source, call, "answer(")},
        ),
        "definition": (
            "textDocument/definition",
            {"textDocument": doc, "position": _pos(source, call, "answer(")},
        ),
        "completion (in a call)": (
            "textDocument/completion",
            {"textDocument": doc, "position": _pos(source, call, "answer(", after=True)},
        ),
        "signatureHelp": (
            "textDocument/signatureHelp",
            {"textDocument": doc, "position": _pos(source, call, "answer(", after=True)},
        ),
    }
    version = 1

    def edit() -> None:
        nonlocal version
        version += 1
        end = len(source[body])
        if version % 2 == 0:
            rng = {
                "start": {"line": body, "character": end},
                "end": {"line": body, "character": end},
            }
            new = " "
        else:
            rng = {
                "start": {"line": body, "character": end},
                "end": {"line": body, "character": end + 1},
            }
            new = ""
        client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [{"range": rng, "text": new}],
            },
        )

    async def settle() -> None:
        if version % 2:  # back at the original text: let the debounced diagnostics run
            await client.wait_diagnostics(uri, version)

    table: dict[str, dict[str, float | None]] = {}
    for name, (method, params) in requests.items():
        warm: list[float] = []
        after: list[float] = []
        supported = True
        for _ in range(reps):
            seconds, answer = await client.call(method, params)
            if "error" in answer and answer["error"]["code"] == -32601:
                supported = False
                break
            warm.append(seconds)
        if supported:
            for _ in range(reps):
                edit()
                seconds, _answer = await client.call(method, params)
                after.append(seconds)
                edit()  # undo: the next sample starts from the same text
                await settle()
        table[name] = {
            "warm_ms": statistics.median(warm) * 1000 if supported else None,
            "after_edit_ms": statistics.median(after) * 1000 if supported else None,
        }
    result["requests"] = table

    # semanticTokens/full/delta after an edit (against the previous full result).
    if (caps.get("semanticTokensProvider") or {}).get("full", {}) not in (True, False, None) and (
        caps["semanticTokensProvider"]["full"].get("delta")
    ):
        samples = []
        _s, full = await client.call("textDocument/semanticTokens/full", {"textDocument": doc})
        previous = full["result"]["resultId"]
        for _ in range(reps):
            edit()
            seconds, answer = await client.call(
                "textDocument/semanticTokens/full/delta",
                {"textDocument": doc, "previousResultId": previous},
            )
            previous = answer["result"]["resultId"]
            samples.append(seconds)
        result["semanticTokens_delta_after_edit_ms"] = statistics.median(samples) * 1000
        if version % 2:
            edit()

    # Enter at the end of the body line (every block below moves a line), then each of
    # documentSymbol and semanticTokens/full; the line is removed again before the next.
    body_end = len(source[body])

    def newline(add: bool) -> None:
        nonlocal version
        version += 1
        start = {"line": body, "character": body_end}
        end = start if add else {"line": body + 1, "character": 8}
        client.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [
                    {"range": {"start": start, "end": end}, "text": "\n        " if add else ""}
                ],
            },
        )

    for name in ("documentSymbol", "semanticTokens/full"):
        samples = []
        for _ in range(reps):
            newline(True)
            seconds, _answer = await client.call(*requests[name])
            samples.append(seconds)
            newline(False)
            await client.call(*requests[name])
        result.setdefault("after_newline_ms", {})[name] = statistics.median(samples) * 1000

    # The VS Code pattern: a keystroke, then documentSymbol, semanticTokens and completion
    # in flight together; the completion's latency counts.
    in_flight = []
    method, params = requests["completion (in a call)"]
    for _ in range(reps * 2):
        edit()
        symbols = client.request("textDocument/documentSymbol", {"textDocument": doc})
        tokens = client.request("textDocument/semanticTokens/full", {"textDocument": doc})
        t = time.perf_counter()
        answer = await asyncio.wait_for(client.request(method, params), 120)
        in_flight.append(time.perf_counter() - t)
        assert "result" in answer, answer
        await asyncio.wait_for(asyncio.gather(symbols, tokens), 120)
        await settle()
    result["completion_after_edit_in_flight_ms"] = statistics.median(in_flight) * 1000
    result["completion_after_edit_in_flight_max_ms"] = max(in_flight) * 1000

    shutdown = client.request("shutdown", None)
    await asyncio.wait_for(shutdown, 60)
    client.notify("exit", None)
    await asyncio.wait_for(proc.wait(), 60)
    client.reader.cancel()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    r = asyncio.run(measure(args.lines, args.reps))
    if args.json:
        print(json.dumps(r, indent=2))
        return
    print(f"{r['lines']} lines; didOpen -> diagnostics: {r['open_ms']:.0f} ms\n")
    print("| request | alone, warm | alone, right after an edit |")
    print("|---|---|---|")

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f} ms"

    for name, row in r["requests"].items():
        print(f"| {name} | {ms(row['warm_ms'])} | {ms(row['after_edit_ms'])} |")
    if "semanticTokens_delta_after_edit_ms" in r:
        print(f"| semanticTokens/full/delta | | {ms(r['semanticTokens_delta_after_edit_ms'])} |")
    for name, value in r.get("after_newline_ms", {}).items():
        print(f"| {name}, right after Enter (the lines below move) | | {ms(value)} |")
    print(
        "\ncompletion right after an edit with documentSymbol + semanticTokens in flight: "
        f"median {r['completion_after_edit_in_flight_ms']:.1f} ms, "
        f"worst {r['completion_after_edit_in_flight_max_ms']:.1f} ms (target <= 100 ms median)"
    )


if __name__ == "__main__":
    main()
