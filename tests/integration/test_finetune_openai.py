"""dsx.LM(...).finetune against dsx.testing's OpenAI-compatible fine-tuning endpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

import dsx
from dsx.runtime.finetune import (
    FinetuneCancelled,
    FinetunedModel,
    FinetuneError,
    FinetuneFailed,
    FinetuneTimeout,
    data_hash,
)
from dsx.testing.server import Fault, OpenAIServer

pytestmark = pytest.mark.integration

DATA = [
    {
        "messages": [
            {"role": "system", "content": "Answer."},
            {"role": "user", "content": f"q{i}"},
            {"role": "assistant", "content": f"a{i}"},
        ]
    }
    for i in range(3)
]
FAST = {"poll_interval": 0.001, "max_poll_interval": 0.002}


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as srv:
        yield srv


def _lm(server: OpenAIServer) -> dsx.LM:
    return dsx.LM("openai/gpt-4o-mini", api_base=server.api_base, api_key="sk-test")


def test_success_uploads_creates_polls_and_names_the_model(server: OpenAIServer) -> None:
    lm = _lm(server)
    job = lm.finetune(DATA, {"n_epochs": 2, "seed": 7}, **FAST)
    assert job.status() in ("queued", "running", "validating_files")
    tuned = job.result()
    assert tuned.model == "openai/ft:gpt-4o-mini:dsx::2"
    assert tuned.finetuned == FinetunedModel(
        "openai", "openai/ft:gpt-4o-mini:dsx::2", "openai/gpt-4o-mini", data_hash(DATA), job.id
    )
    assert tuned.api_base == server.api_base  # the endpoint stays in code, not in the ref
    assert job.polls >= 4  # validating -> queued -> running (x2) -> succeeded
    [uploaded] = server.fine_tuning.files.values()
    assert [json.loads(line) for line in uploaded.decode().splitlines()] == DATA
    stored = server.fine_tuning.jobs[job.id]
    assert stored.hyperparameters == {"n_epochs": 2}
    messages = [e.message for e in job.events()]
    assert messages[0].startswith("Created fine-tuning job")
    assert messages[-1] == "New fine-tuned model created: ft:gpt-4o-mini:dsx::2"
    state = tuned.dump_state()
    assert state["model"] == "openai/ft:gpt-4o-mini:dsx::2"
    assert state["finetuned"]["data_hash"] == data_hash(DATA)
    assert "api_base" not in state and "api_key" not in state
    # the fine-tuned model answers through the same endpoint
    assert tuned("hi")
    assert server.requests[-1].body["model"] == "ft:gpt-4o-mini:dsx::2"


def test_failure_says_why(server: OpenAIServer) -> None:
    server.fine_tuning.plan = "fail"
    job = _lm(server).finetune(DATA, **FAST)
    with pytest.raises(FinetuneFailed, match="Training loss diverged.*training_failed"):
        job.result()
    assert job.status() == "failed"


def test_cancel_stops_the_job(server: OpenAIServer) -> None:
    server.fine_tuning.plan = "hang"
    job = _lm(server).finetune(DATA, **FAST)
    job.status()
    job.cancel()
    assert job.status() == "cancelled"
    assert server.fine_tuning.cancelled == [job.id]
    with pytest.raises(FinetuneCancelled, match=job.id):
        job.result()
    assert job.events()[-1].message == "Job was cancelled"


def test_timeout_leaves_the_job_running(server: OpenAIServer) -> None:
    server.fine_tuning.plan = "hang"
    job = _lm(server).finetune(DATA, poll_interval=0.01, max_poll_interval=0.02)
    while job.status() != "running":  # validating_files -> queued -> running, then it hangs
        pass
    with pytest.raises(FinetuneTimeout, match="still running") as info:
        job.result(timeout=0.1)
    assert isinstance(info.value, TimeoutError)
    assert job.status() == "running"
    job.cancel()


def test_invalid_training_data_is_refused_at_creation(server: OpenAIServer) -> None:
    bad = [{"messages": [{"role": "user", "content": "no answer"}]}]
    with pytest.raises(FinetuneError, match="HTTP 400.*assistant"):
        _lm(server).finetune(bad)
    with pytest.raises(FinetuneError, match="No training data"):
        _lm(server).finetune([])


def test_unreachable_endpoint_is_a_finetune_error() -> None:
    with OpenAIServer() as srv:
        base = srv.api_base
    lm = dsx.LM("openai/gpt-4o-mini", api_base=base, api_key="x")
    with pytest.raises(FinetuneError, match="failed: Connect"):
        lm.finetune(DATA)


def test_real_endpoints_are_forbidden_in_tests() -> None:
    lm = dsx.LM("openai/gpt-4o-mini", api_key="sk-x")
    with pytest.raises(dsx.errors.RealLMCallForbidden):
        lm.finetune(DATA)


def test_a_server_error_while_polling_is_retried(server: OpenAIServer) -> None:
    job = _lm(server).finetune(DATA, **FAST)
    server.inject(Fault.server_error())
    server.inject(Fault.unavailable())
    assert job.result().model.startswith("openai/ft:gpt-4o-mini:dsx::")
    assert server.pending_faults == []


def test_a_lasting_server_error_while_polling_says_so(server: OpenAIServer) -> None:
    job = _lm(server).finetune(DATA, **FAST)
    server.inject(Fault.server_error(), times=4)
    with pytest.raises(FinetuneError, match="HTTP 500"):
        job.result()
