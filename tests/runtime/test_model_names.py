"""Model strings are checked before anything is sent: provider, model name, API key.

The suite forbids real LM requests (conftest), so a check that came too late would show up
here as ``RealLMCallForbidden`` rather than the error asserted; nothing can reach a
provider either way.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

import dsx
from dsx.errors import AuthenticationError, BadRequestError, LMError, ModelNotFoundError
from dsx.runtime import _model_names
from dsx.runtime.lm import LM

OPENAI_VARIABLES = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE")


@pytest.mark.parametrize(
    ("model", "suggestion"),
    [
        ("opnai/gpt-4o-mini", "'openai/gpt-4o-mini'"),
        ("antropic/claude-3-5-haiku-latest", "'anthropic/claude-3-5-haiku-latest'"),
        ("OpenAI/gpt-4o", "'openai/gpt-4o'"),
        ("olama_chat/llama3", "'ollama_chat/llama3'"),
    ],
)
def test_an_unknown_provider_says_so_and_suggests_close_ones(model: str, suggestion: str) -> None:
    with pytest.raises(ModelNotFoundError) as info:
        LM(model)
    message = str(info.value)
    prefix = model.split("/")[0]
    assert f"unknown provider {prefix!r}" in message
    assert f"Did you mean {suggestion}" in message
    assert info.value.model == model and not info.value.retryable


def test_a_hugging_face_style_name_is_told_to_use_the_openai_prefix() -> None:
    with pytest.raises(ModelNotFoundError, match="unknown provider 'meta-llama'") as info:
        LM("meta-llama/Llama-3.1-8B-Instruct", api_base="http://127.0.0.1:8000/v1")
    assert "'openai/meta-llama/Llama-3.1-8B-Instruct'" in str(info.value)
    # transport="openai" sends any name as it is: there the prefix is the server's business.
    lm = LM("meta-llama/Llama-3.1-8B-Instruct", api_base="http://x/v1", transport="openai")
    assert lm.model == "meta-llama/Llama-3.1-8B-Instruct"


@pytest.mark.parametrize("transport", ["auto", "openai", "litellm"])
@pytest.mark.parametrize("model", ["openai/", "openai/ ", "hosted_vllm/", "/gpt-4o-mini"])
def test_an_empty_provider_or_model_name_is_rejected(model: str, transport: str) -> None:
    with pytest.raises(BadRequestError, match="is empty|provider is missing") as info:
        LM(model, transport=transport)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError) and repr(model) in str(info.value)


def test_copy_checks_the_new_model_string() -> None:
    lm = LM("openai/gpt-4o-mini", api_key="k")
    with pytest.raises(ModelNotFoundError, match="Did you mean 'openai/x'"):
        lm.copy(model="opena/x")
    with pytest.raises(BadRequestError, match="empty"):
        lm.copy(model="openai/")
    assert lm.copy(model="anthropic/claude-3-5-haiku-latest").model.startswith("anthropic/")


def test_providers_beyond_the_common_ones_come_from_litellms_list() -> None:
    assert "nebius" not in _model_names.COMMON_PROVIDERS
    assert "nebius" in _model_names.known_providers()
    LM("nebius/some-model", api_key="k")  # accepted
    assert LM("gpt-4o-mini").model == "gpt-4o-mini"  # a bare name: LiteLLM infers it


def test_checking_model_strings_never_imports_litellm() -> None:
    probe = (
        "import sys, dsx\n"
        "from dsx.errors import ModelNotFoundError\n"
        "dsx.LM('nebius/m', api_key='k')\n"
        "try:\n"
        "    dsx.LM('opnai/gpt-4o')\n"
        "except ModelNotFoundError as exc:\n"
        "    assert 'openai/gpt-4o' in str(exc), exc\n"
        "print('litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- keys -------------------------------------------------------------------------------------


@pytest.fixture
def no_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OPENAI_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("transport", ["auto", "openai", "litellm"])
@pytest.mark.usefixtures("no_openai_env")
def test_a_missing_openai_key_is_named_before_any_request(transport: str) -> None:
    lm = LM("openai/gpt-4o-mini", transport=transport)  # type: ignore[arg-type]
    with pytest.raises(AuthenticationError, match="no API key for openai") as info:
        lm("hi")
    assert "Set OPENAI_API_KEY" in str(info.value) and "api_base=" in str(info.value)
    assert not info.value.retryable and info.value.status_code is None
    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        asyncio.run(lm.acall("hi"))

    async def stream() -> None:
        async for _ in lm.astream([{"role": "user", "content": "hi"}]):
            pass

    with pytest.raises(AuthenticationError, match="OPENAI_API_KEY"):
        asyncio.run(stream())
    assert len(lm.history) == 0


def test_other_providers_name_their_own_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_BASE", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    with pytest.raises(AuthenticationError, match="Set ANTHROPIC_API_KEY"):
        LM("anthropic/claude-3-5-haiku-latest")("hi")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
    # With the key set the check passes, and the test switch refuses the request instead.
    with pytest.raises(dsx.errors.RealLMCallForbidden):
        LM("anthropic/claude-3-5-haiku-latest")("hi")


@pytest.mark.usefixtures("no_openai_env")
def test_a_key_or_an_endpoint_makes_the_check_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    cases: list[LM] = [
        LM("openai/gpt-4o-mini", api_key="sk-given"),
        LM("openai/my-model", api_base="http://127.0.0.1:9/v1"),  # a local server
    ]
    for lm in cases:
        assert _model_names.missing_key(lm.model, lm.api_base, lm.api_key) is None
    assert _model_names.missing_key("openai/m", None, None) is not None
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert _model_names.missing_key("openai/m", None, None) is None
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert _model_names.missing_key("openai/m", None, None) is None
    # Providers with other sign-in schemes and local ones are not checked.
    for model in ("bedrock/anthropic.claude-v2", "ollama_chat/llama3", "hosted_vllm/m"):
        assert _model_names.missing_key(model, None, None) is None


@pytest.mark.usefixtures("no_openai_env")
def test_a_per_call_key_is_enough() -> None:
    lm = LM("openai/gpt-4o-mini")
    with pytest.raises(dsx.errors.RealLMCallForbidden):  # past the key check
        lm("hi", api_key="sk-per-call")
    with pytest.raises(LMError, match="no API key"):
        lm("hi")


@pytest.mark.usefixtures("no_openai_env")
def test_an_endpoint_from_the_environment_counts_for_the_key_and_the_test_switch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "https://llm.example.com/v1")
    lm = LM("openai/my-model")
    # No key needed for an endpoint of one's own; the switch sees that it is not loopback.
    with pytest.raises(dsx.errors.RealLMCallForbidden, match="openai/my-model"):
        lm("hi")
