"""Host tools called from guest code: signatures, JSON, exceptions, async, the call cap."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time

import pytest
from pydantic import BaseModel

from dsx.sandbox import ExecutionResult, Sandbox


def search(query: str, k: int = 3, *, lang: str = "en") -> list[str]:
    """Search the corpus."""
    return [f"{lang}:{query}:{i}" for i in range(k)]


class NotFound(LookupError):
    pass


def lookup(key: str) -> str:
    raise NotFound(f"no entry for {key!r}")


def test_tool_is_called_with_its_real_signature(sandbox: Sandbox) -> None:
    r = sandbox.execute(
        "import inspect\n"
        "sig = str(inspect.signature(search))\n"
        "hits = search('wasm', 2) + search(query='x', k=1, lang='de')\n"
        "sig, hits, search.__doc__, search.__name__",
        tools={"search": search},
    )
    assert r.ok, r.error
    assert r.value == [
        "(query: 'str', k: 'int' = 3, *, lang: 'str' = 'en') -> 'list[str]'",
        ["en:wasm:0", "en:wasm:1", "de:x:0"],
        "Search the corpus.",
        "search",
    ]
    assert [c.name for c in r.tool_calls] == ["search", "search"]
    first = r.tool_calls[0]
    assert first.ok and first.args == ("wasm", 2) and first.result == ["en:wasm:0", "en:wasm:1"]
    # Bound as Python binds them: positional-or-keyword parameters travel positionally.
    assert (r.tool_calls[1].args, r.tool_calls[1].kwargs) == (("x", 1), {"lang": "de"})


def test_wrong_arguments_fail_in_the_guest_like_python(sandbox: Sandbox) -> None:
    r = sandbox.execute(
        "try:\n    search()\nexcept TypeError as e:\n    msg = str(e)\nmsg",
        tools=[search],
    )
    assert "query" in r.value and r.tool_calls == ()


def test_session_tools_and_per_call_tools(make_sandbox) -> None:
    sb = make_sandbox(tools=[search])
    r = sb.execute("search('a', 1), double(4)", tools={"double": lambda x: x * 2})
    assert r.value == [["en:a:0"], 8]
    r = sb.execute("search('b', 1)")
    assert r.value == ["en:b:0"]


def test_tool_exception_is_catchable_in_the_guest(sandbox: Sandbox) -> None:
    code = (
        "try:\n"
        "    lookup('k')\n"
        "except LookupError as e:\n"
        "    caught = (type(e).__name__, str(e), isinstance(e, ToolError))\n"
        "caught"
    )
    r = sandbox.execute(code, tools=[lookup])
    assert r.ok and r.value == ["NotFound", "no entry for 'k'", True]
    assert not r.tool_calls[0].ok and r.tool_calls[0].error == "NotFound: no entry for 'k'"


def test_uncaught_tool_exception_fails_the_execution(sandbox: Sandbox) -> None:
    def get(d: str) -> None:
        raise KeyError(d)

    r = sandbox.execute("x = 1\nget('zz')", tools=[get])
    assert not r.ok and r.error is not None
    assert (r.error.type, r.error.message, r.error.line) == ("KeyError", "'zz'", 2)


def test_results_cross_as_json(sandbox: Sandbox) -> None:
    @dataclasses.dataclass
    class Hit:
        title: str
        score: float

    class Doc(BaseModel):
        id: int
        tags: set[str]

    def hits() -> list[Hit]:
        return [Hit("a", 0.5)]

    def doc() -> Doc:
        return Doc(id=3, tags={"x"})

    def bad() -> object:
        return object()

    r = sandbox.execute(
        "h = hits()\nd = doc()\n"
        "try:\n    bad()\nexcept TypeError as e:\n    err = str(e)\n"
        "h, d, 'not JSON-serializable' in err",
        tools=[hits, doc, bad],
    )
    assert r.value == [[{"title": "a", "score": 0.5}], {"id": 3, "tags": ["x"]}, True]


def test_guest_arguments_must_be_json(sandbox: Sandbox) -> None:
    r = sandbox.execute(
        "try:\n    search({1, 2})\nexcept TypeError as e:\n    m = str(e)\nm", tools=[search]
    )
    assert "JSON" in r.value and r.tool_calls == ()


def test_async_tools_work_from_execute_and_aexecute(sandbox: Sandbox) -> None:
    async def fetch(url: str) -> str:
        await asyncio.sleep(0.01)
        return url.upper()

    r = sandbox.execute("fetch('a')", tools=[fetch])
    assert r.value == "A"

    async def main() -> object:
        return (await sandbox.aexecute("fetch('b'), search('c', 1)", tools=[fetch, search])).value

    assert asyncio.run(main()) == ["B", ["en:c:0"]]


def test_a_slow_async_tool_is_cut_off_at_the_deadline(sandbox: Sandbox) -> None:
    sandbox.execute("kept = 1")

    async def slow() -> str:
        await asyncio.sleep(30)
        return "late"

    async def main() -> ExecutionResult:
        return await sandbox.aexecute("x = 1\nslow()", tools=[slow], timeout=0.5)

    began = time.monotonic()
    r = asyncio.run(main())
    assert time.monotonic() - began < 5
    assert r.timed_out and not r.session_reset and r.error is not None
    assert r.error.type == "TimeoutError" and r.error.line == 2
    assert not r.tool_calls[0].ok
    assert sandbox.execute("kept").value == 1


def test_sync_tools_run_off_the_event_loop_under_aexecute(sandbox: Sandbox) -> None:
    seen: list[str] = []

    def where() -> str:
        seen.append(threading.current_thread().name)
        return "ok"

    async def main() -> object:
        return (await sandbox.aexecute("where()", tools=[where])).value

    assert asyncio.run(main()) == "ok"
    assert seen and seen[0] != threading.main_thread().name


def test_tool_call_cap(make_sandbox) -> None:
    sb = make_sandbox(max_tool_calls=3)
    r = sb.execute(
        "n = 0\nfor i in range(5):\n    try:\n        search('q', 0)\n        n += 1\n"
        "    except RuntimeError as e:\n        last = str(e)\nn, last",
        tools=[search],
    )
    assert r.value == [3, "the limit of 3 tool calls per execution is reached"]
    assert len(r.tool_calls) == 5 and [c.ok for c in r.tool_calls] == [True] * 3 + [False] * 2
    assert sb.execute("search('q', 1)", tools=[search]).value == ["en:q:0"]  # per execution


def test_tools_never_reach_the_guest_as_source(sandbox: Sandbox) -> None:
    secret = "s3cret-in-closure"

    def guarded(x: int) -> int:
        assert secret
        return x + 1

    r = sandbox.execute(
        "import inspect\n"
        "try:\n    src = inspect.getsource(guarded)\nexcept (OSError, TypeError):\n    src = None\n"
        "(src, guarded.__closure__, guarded(1), repr(guarded.__code__.co_consts))",
        tools=[guarded],
    )
    assert r.ok, r.error
    src, closure, value, consts = r.value
    assert src is None and closure is None and value == 2
    assert secret not in r.value_repr and "assert" not in consts


def test_invalid_tools_are_rejected_on_the_host(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError, match="identifier"):
        sandbox.execute("1", tools={"not-a-name": search})
    with pytest.raises(ValueError, match="reserved"):
        sandbox.execute("1", tools={"SUBMIT": search})
    with pytest.raises(TypeError, match="callable"):
        sandbox.execute("1", tools={"x": 3})  # type: ignore[dict-item]
