"""Sync LM calls go through the lean transport's one HTTP client (aiohttp) on a private event
loop thread: from threads, from inside a running event loop, in a forked child, streamed,
and closed cleanly at exit."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

import dsx
from dsx.runtime import _openai_transport as lean
from dsx.testing import OpenAIServer


@pytest.fixture(scope="module")
def srv() -> Iterator[OpenAIServer]:
    with OpenAIServer(lambda body: "echo " + body["messages"][-1]["content"]) as server:
        yield server


def make(srv: OpenAIServer) -> dsx.LM:
    return dsx.LM("openai/x", api_base=srv.api_base, api_key="x", cache=False)


def test_sync_calls_from_many_threads_share_one_loop_and_session(srv: OpenAIServer) -> None:
    lm = make(srv)
    results: dict[int, list[str]] = {}

    def run(i: int) -> None:
        results[i] = lm(f"t{i}") + lm(f"s{i}", stream=True)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: [f"echo t{i}", f"echo s{i}"] for i in range(8)}
    assert lean._loop is not None and lean._sync_session is not None
    assert lean._loop not in lean._sessions  # the async sessions stay per caller's loop


async def test_a_sync_call_inside_a_running_event_loop_does_not_deadlock(
    srv: OpenAIServer,
) -> None:
    lm = make(srv)
    assert lm("inside") == ["echo inside"]  # blocks this loop, answered by the private one
    assert await lm.acall("async") == ["echo async"]


def test_a_stream_left_early_frees_its_request(srv: OpenAIServer) -> None:
    lm = make(srv)
    wire = lm._wire(lm._prepare([{"role": "user", "content": "early"}], {}), stream=True)
    events = lean.stream(wire)
    first = next(events)
    assert first["choices"]
    events.close()  # the async stream is closed on the private loop
    assert lm("after") == ["echo after"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_its_own_loop(srv: OpenAIServer) -> None:
    lm = make(srv)
    assert lm("parent") == ["echo parent"]
    probe = (
        "import os, sys, dsx\n"
        f"lm = dsx.LM('openai/x', api_base={srv.api_base!r}, api_key='x', cache=False)\n"
        "print(lm('parent')[0], flush=True)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    print(lm('child')[0], flush=True)\n"
        "    sys.exit(0)  # a normal exit: the child's clean-up must not touch the parent's\n"
        "os.waitpid(pid, 0)\n"
        "print(lm('parent again')[0], flush=True)\n"
    )
    out = subprocess.run(
        [sys.executable, "-X", "dev", "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.split("\n")[:3] == ["echo parent", "echo child", "echo parent again"]
    assert "Unclosed" not in out.stderr, out.stderr


def test_the_connections_are_closed_at_exit(srv: OpenAIServer) -> None:
    probe = (
        "import dsx\n"
        f"lm = dsx.LM('openai/x', api_base={srv.api_base!r}, api_key='x', cache=False)\n"
        "print(lm('a')[0], lm('b', stream=True)[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-X", "dev", "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "echo a echo b"
    assert "Unclosed" not in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_an_async_program_and_sync_calls_in_one_process(srv: OpenAIServer) -> None:
    lm = make(srv)

    async def main() -> list[str]:
        outs = await asyncio.gather(*(lm.acall(f"a{i}") for i in range(5)))
        return [o[0] for o in outs]

    assert asyncio.run(main()) == [f"echo a{i}" for i in range(5)]
    assert lm("sync") == ["echo sync"]
