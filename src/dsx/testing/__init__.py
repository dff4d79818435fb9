"""Test doubles that users need too: scripted LMs, the real-request switch, a local server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dsx.testing._lms import DummyLM as DummyLM
from dsx.testing._lms import FunctionLM as FunctionLM
from dsx.testing._lms import forbid_real_lm_requests as forbid_real_lm_requests
from dsx.testing._lms import format_answer as format_answer

if TYPE_CHECKING:
    from dsx.testing.colbert_server import ColBERTv2Server as ColBERTv2Server
    from dsx.testing.fake_sandbox import FakeExecution as FakeExecution
    from dsx.testing.fake_sandbox import FakeSandbox as FakeSandbox
    from dsx.testing.fake_sandbox import fake_result as fake_result
    from dsx.testing.server import Fault as Fault
    from dsx.testing.server import OpenAIServer as OpenAIServer
    from dsx.testing.server import Reply as Reply

__all__ = [
    "ColBERTv2Server",
    "DummyLM",
    "FakeExecution",
    "FakeSandbox",
    "fake_result",
    "Fault",
    "FunctionLM",
    "OpenAIServer",
    "Reply",
    "forbid_real_lm_requests",
    "format_answer",
]


def __getattr__(name: str) -> Any:
    if name in ("FakeSandbox", "FakeExecution", "fake_result"):
        from dsx.testing import fake_sandbox

        return getattr(fake_sandbox, name)
    if name == "ColBERTv2Server":
        from dsx.testing import colbert_server

        return colbert_server.ColBERTv2Server
    if name in ("OpenAIServer", "Fault", "Reply"):
        from dsx.testing import server

        return getattr(server, name)
    raise AttributeError(f"module 'dsx.testing' has no attribute {name!r}")
