"""Structured output against servers that disagree about ``response_format``.

``OpenAIServer(structured_output=...)`` accepts and refuses ``response_format`` types the
way OpenAI, llama-cpp-python's server, Ollama and vLLM do (over real HTTP on 127.0.0.1);
``dsx.LM`` must step down to a mode the server takes, once, remember it, and keep genuine
server errors apart from validation errors. Every test that takes ``transport`` runs
through LiteLLM and through the lean client.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import dsx
from dsx.errors import BadRequestError, ServerError
from dsx.runtime.cache import configure_cache, get_cache, request_key
from dsx.runtime.lm import LM, Transport
from dsx.testing.server import Fault, OpenAIServer, StructuredOutput

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:litellm"),
    pytest.mark.filterwarnings("ignore:Item .* is using the `ReadOnly` qualifier:UserWarning"),
]

LLAMA_CPP_REFUSAL = "Input should be 'text' or 'json_object'"
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
JSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "QA", "schema": SCHEMA, "strict": False},
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    configure_cache(disk_dir=tmp_path / "cache")
    monkeypatch.setattr(LM, "retry_base_delay", 0.001)
    monkeypatch.setattr(LM, "retry_max_delay", 0.005)
    dsx.configure(adapter=dsx.JSONAdapter())
    yield
    configure_cache()


@pytest.fixture(params=["litellm", "openai"])
def transport(request: pytest.FixtureRequest) -> Transport:
    value: Transport = request.param
    return value


def answer_json(request: dict[str, Any]) -> str:
    """A model that answers every question with JSON, whatever it was asked for."""
    question = request["messages"][-1]["content"]
    return json.dumps({"answer": "Paris" if "France" in question else "unknown"})


def make(srv: OpenAIServer, transport: Transport, **kwargs: Any) -> LM:
    return LM("openai/dsx-test", api_base=srv.api_base, api_key="k", transport=transport, **kwargs)


def modes(srv: OpenAIServer) -> list[str | None]:
    return [r.structured_output for r in srv.requests]


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# -- each server convention ---------------------------------------------------------------

#: What a JSONAdapter program sends to each server, call after call: a refused json_schema
#: costs one request, once.
CONVENTIONS: list[tuple[StructuredOutput, list[str]]] = [
    ("openai", ["json_schema", "json_schema"]),
    ("vllm", ["json_schema", "json_schema"]),
    ("none", ["json_schema", "json_schema"]),
    ("llama.cpp", ["json_schema", "json_object_schema", "json_object_schema"]),
    ("ollama", ["json_schema", "json_object_schema", "json_object_schema"]),
]


@pytest.mark.parametrize(("convention", "expected"), CONVENTIONS, ids=[c for c, _ in CONVENTIONS])
def test_json_adapter_predict_works_with_each_server_convention(
    convention: StructuredOutput, expected: list[str], transport: Transport
) -> None:
    with OpenAIServer(answer_json, structured_output=convention) as srv:
        predict = dsx.Predict("question -> answer", lm=make(srv, transport))
        assert predict(question="Capital of France?").answer == "Paris"
        assert predict(question="Capital of Mars?").answer == "unknown"
        assert modes(srv) == expected
        if len(expected) == 3:  # the refused request carried the schema as json_schema...
            first, second = (r.body["response_format"] for r in srv.requests[:2])
            assert first["json_schema"]["schema"]["required"] == ["answer"]
            # ...and the fallback carries the same schema the llama.cpp way
            assert second == {"type": "json_object", "schema": first["json_schema"]["schema"]}


@pytest.mark.parametrize("convention", ["llama.cpp", "ollama"])
async def test_async_fallback_happens_once_and_is_remembered(
    convention: StructuredOutput, transport: Transport
) -> None:
    with OpenAIServer(answer_json, structured_output=convention) as srv:
        predict = dsx.Predict("question -> answer", lm=make(srv, transport))
        first = await predict.acall(question="Capital of France?")
        assert first.answer == "Paris" and srv.request_count == 2
        answers = await asyncio.gather(*(predict.acall(question=f"q{i}") for i in range(5)))
        assert [a.answer for a in answers] == ["unknown"] * 5
        assert srv.request_count == 7  # no further refusals
        assert modes(srv)[2:] == ["json_object_schema"] * 5


async def test_astream_falls_back_before_streaming_and_remembers(transport: Transport) -> None:
    with OpenAIServer(structured_output="llama.cpp") as srv:
        lm = make(srv, transport, cache=False)
        deltas = [d async for d in lm.astream(ask("one two three"), response_format=JSON_SCHEMA)]
        assert deltas == ["one", " two", " three"]
        assert modes(srv) == ["json_schema", "json_object_schema"]
        assert lm.history[-1]["structured_output"] == "json_object_schema"
        again = [d async for d in lm.astream(ask("four five"), response_format=JSON_SCHEMA)]
        assert again == ["four", " five"]
        assert modes(srv)[2:] == ["json_object_schema"]
        assert all(r.body["stream"] is True for r in srv.requests)


def test_sync_streaming_request_falls_back_too(transport: Transport) -> None:
    with OpenAIServer(structured_output="ollama") as srv:
        lm = make(srv, transport, cache=False)
        response = lm.request(ask("a b c"), response_format=JSON_SCHEMA, stream=True)
        assert response.outputs == ["a b c"]
        assert response.structured_output == "json_object_schema"
        assert modes(srv) == ["json_schema", "json_object_schema"]


def test_the_ladder_goes_down_to_prompt_only_and_stays_there(transport: Transport) -> None:
    def strict_server(request: dict[str, Any]) -> Any:
        if "response_format" in request:
            return Fault.status(400, "'response_format' is not supported by this model.")
        return answer_json(request)

    with OpenAIServer(strict_server) as srv:
        lm = make(srv, transport)
        predict = dsx.Predict("question -> answer", lm=lm)
        assert predict(question="Capital of France?").answer == "Paris"
        assert modes(srv) == ["json_schema", "json_object_schema", "json_object", None]
        assert predict(question="Capital of Mars?").answer == "unknown"
        assert modes(srv)[4:] == [None]  # remembered: no refused request any more
        assert "response_format: none (the prompt asks for JSON)" in lm.inspect_history()


def test_a_json_object_request_without_schema_skips_the_schema_step(transport: Transport) -> None:
    def no_formats(request: dict[str, Any]) -> Any:
        if "response_format" in request:
            return Fault.status(422, "response_format: Extra inputs are not permitted")
        return "plain"

    with OpenAIServer(no_formats) as srv:
        lm = make(srv, transport, cache=False)
        assert lm("q", response_format={"type": "json_object"}) == ["plain"]
        assert modes(srv) == ["json_object", None]


def test_what_was_learned_belongs_to_the_model_and_endpoint(transport: Transport) -> None:
    with (
        OpenAIServer(answer_json, structured_output="llama.cpp") as llama,
        OpenAIServer(answer_json, structured_output="openai") as openai_like,
    ):
        lm = make(llama, transport, cache=False)
        lm("q1", response_format=JSON_SCHEMA)
        assert modes(llama) == ["json_schema", "json_object_schema"]
        # The same LM towards another endpoint still asks for json_schema there.
        lm("q2", response_format=JSON_SCHEMA, api_base=openai_like.api_base)
        assert modes(openai_like) == ["json_schema"]
        # A copy (same model, same endpoint) knows already; another model name does not.
        lm.copy(temperature=0.5)("q3", response_format=JSON_SCHEMA)
        assert modes(llama)[2:] == ["json_object_schema"]
        lm.copy(model="openai/other")("q4", response_format=JSON_SCHEMA)
        assert modes(llama)[3:] == ["json_schema", "json_object_schema"]


def test_the_cache_key_is_that_of_the_request_sent(transport: Transport) -> None:
    with OpenAIServer(answer_json, structured_output="llama.cpp") as srv:
        lm = make(srv, transport)
        messages = ask("Capital of France?")
        assert lm.request(messages, response_format=JSON_SCHEMA).outputs == ['{"answer": "Paris"}']
        sent = {"type": "json_object", "schema": SCHEMA}
        cache = get_cache()
        model = "openai/dsx-test"
        assert cache.get(
            request_key(model=model, messages=messages, params={"response_format": sent})
        )
        asked = request_key(model=model, messages=messages, params={"response_format": JSON_SCHEMA})
        assert cache.get(asked) is None  # the refused json_schema request has no answer
        # Without the remembered mode, a fresh LM asks again, is refused, then hits the cache.
        fresh = make(srv, transport)
        response = fresh.request(messages, response_format=JSON_SCHEMA)
        assert response.cached and response.structured_output == "json_object_schema"
        assert srv.request_count == 3
        # The same question without response_format is another request: not that entry.
        assert not fresh.request(messages).cached


def test_inspect_history_shows_the_mode_used(transport: Transport) -> None:
    with OpenAIServer(answer_json, structured_output="llama.cpp") as srv:
        lm = make(srv, transport)
        dsx.Predict("question -> answer", lm=lm)(question="Capital of France?")
        assert lm.history[-1]["structured_output"] == "json_object_schema"
        assert "response_format: json_object + schema" in lm.inspect_history()
        lm("no format asked")
        assert lm.history[-1]["structured_output"] is None
        assert "response_format" not in lm.inspect_history()


# -- errors ---------------------------------------------------------------------------------


def test_a_genuine_server_error_is_retried_and_is_no_reason_to_step_down(
    transport: Transport,
) -> None:
    with OpenAIServer(answer_json, structured_output="vllm") as srv:
        srv.inject(Fault.server_error("kaput"))
        lm = make(srv, transport, cache=False)
        assert dsx.Predict("question -> answer", lm=lm)(question="France?").answer == "Paris"
        assert modes(srv) == ["json_schema", "json_schema"]  # retried as it was
        srv.inject(Fault.server_error("kaput"), times=2)
        with pytest.raises(ServerError, match="kaput") as info:
            lm("x", response_format=JSON_SCHEMA, num_retries=1)
        assert info.value.retryable and info.value.attempts == 2


VALIDATION_500 = (
    "1 validation error for CreateChatCompletionRequest\ntemperature\n  Input should be "
    "less than or equal to 2 [type=less_than_equal, input_value=5.0, input_type=float]"
)


def test_a_validation_500_is_a_bad_request_and_is_not_retried(transport: Transport) -> None:
    with OpenAIServer() as srv:
        srv.inject(Fault.server_error(VALIDATION_500))
        lm = make(srv, transport, cache=False, num_retries=3)
        with pytest.raises(BadRequestError) as info:
            lm("too hot", temperature=5.0)
        err = info.value
        assert srv.request_count == 1
        assert not err.retryable and err.attempts == 1 and err.status_code == 500
        assert err.provider_message == VALIDATION_500
        assert "Input should be less than or equal to 2" in str(err)
        assert "validation error" in str(err) and "openai/dsx-test" in str(err)


def test_a_refused_format_on_the_last_step_is_reported_not_looped(transport: Transport) -> None:
    with OpenAIServer(structured_output="llama.cpp") as srv:
        lm = make(srv, transport, cache=False)
        with pytest.raises(BadRequestError, match=LLAMA_CPP_REFUSAL) as info:
            lm("q", response_format={"type": "xml"})  # not a mode dsx can step down from
        assert srv.request_count == 1 and info.value.status_code == 500


def test_a_bad_request_about_something_else_does_not_step_down(transport: Transport) -> None:
    with OpenAIServer(answer_json, structured_output="openai") as srv:
        srv.inject(Fault.status(400, "Invalid value for 'temperature'."))
        lm = make(srv, transport, cache=False)
        with pytest.raises(BadRequestError, match="temperature"):
            dsx.Predict("question -> answer", lm=lm)(question="France?")
        assert modes(srv) == ["json_schema"]
        assert dsx.Predict("question -> answer", lm=lm)(question="France?").answer == "Paris"
        assert modes(srv) == ["json_schema", "json_schema"]  # nothing was learned


# -- the mimic server itself ------------------------------------------------------------------


def post(srv: OpenAIServer, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        srv.api_base + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def chat(response_format: Any = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "messages": ask("hi"), **extra}
    if response_format is not None:
        body["response_format"] = response_format
    return body


JSON_OBJECT_SCHEMA = {"type": "json_object", "schema": SCHEMA}


@pytest.mark.parametrize(
    ("convention", "response_format", "status"),
    [
        ("openai", JSON_SCHEMA, 200),
        ("openai", {"type": "json_object"}, 200),
        ("openai", {"type": "xml"}, 400),
        ("vllm", JSON_SCHEMA, 200),
        ("llama.cpp", JSON_SCHEMA, 500),
        ("llama.cpp", JSON_OBJECT_SCHEMA, 200),
        ("llama.cpp", {"type": "text"}, 200),
        ("ollama", JSON_SCHEMA, 400),
        ("ollama", {"type": "json_object"}, 200),
        ("none", {"type": "xml"}, 200),
        ("none", JSON_SCHEMA, 200),
    ],
)
def test_the_server_accepts_and_refuses_like_the_server_it_mimics(
    convention: StructuredOutput, response_format: dict[str, Any], status: int
) -> None:
    with OpenAIServer(structured_output=convention) as srv:
        code, doc = post(srv, chat(response_format))
        assert code == status, doc
        if status == 200:
            assert doc["choices"][0]["message"]["content"] == "hi"
        expected_mode = {"xml": "xml", "text": "text", "json_schema": "json_schema"}.get(
            response_format["type"],
            "json_object_schema" if "schema" in response_format else "json_object",
        )
        assert srv.requests[0].structured_output == expected_mode


def test_llama_cpp_refuses_json_schema_with_a_pydantic_500() -> None:
    with OpenAIServer(structured_output="llama.cpp") as srv:
        code, doc = post(srv, chat(JSON_SCHEMA))
        assert code == 500 and doc["error"]["type"] == "internal_server_error"
        message = doc["error"]["message"]
        # As llama-cpp-python 0.3.x words it (FastAPI's request validation error).
        assert message.startswith("1 validation error:\n  {'type': 'literal_error', ")
        assert LLAMA_CPP_REFUSAL in message and "'input': 'json_schema'" in message
        assert "('body', 'response_format', 'type')" in message


def test_vllm_takes_guided_json_and_requests_without_format_record_none() -> None:
    with OpenAIServer(structured_output="vllm") as srv:
        assert post(srv, chat(guided_json=SCHEMA))[0] == 200
        assert srv.requests[0].structured_output is None
    with pytest.raises(ValueError, match="structured_output must be"):
        OpenAIServer(structured_output="tgi")  # type: ignore[arg-type]
