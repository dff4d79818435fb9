"""Model strings checked before anything is sent: the provider, the model name, the key.

``dsx.LM("opnai/gpt-4o")`` should fail at once with "unknown provider 'opnai'; did you
mean 'openai/gpt-4o'?", not seconds later inside LiteLLM; a missing ``OPENAI_API_KEY``
should be named before the first request, not reported as a provider failure.

The providers are those LiteLLM routes. A small set is written down here, so that common
model strings are checked without reading anything; any other prefix is looked up in
LiteLLM's own list — ``litellm.provider_list`` when LiteLLM is already imported, else read
from the source file LiteLLM ships, without importing it (``import dsx`` never imports
LiteLLM, and importing it takes seconds).
"""

from __future__ import annotations

import difflib
import os
import re
import sys
from functools import cache

from dsx.errors import AuthenticationError, BadRequestError, ModelNotFoundError

__all__ = ["check_model", "endpoint_from_env", "missing_key", "provider_of"]

#: Providers known without asking LiteLLM (a subset of its list).
COMMON_PROVIDERS = frozenset(
    {
        "openai",
        "text-completion-openai",
        "azure",
        "azure_ai",
        "anthropic",
        "gemini",
        "vertex_ai",
        "bedrock",
        "sagemaker",
        "mistral",
        "codestral",
        "groq",
        "together_ai",
        "fireworks_ai",
        "deepseek",
        "xai",
        "perplexity",
        "openrouter",
        "cohere",
        "cohere_chat",
        "cerebras",
        "deepinfra",
        "huggingface",
        "replicate",
        "databricks",
        "watsonx",
        "nvidia_nim",
        "ollama",
        "ollama_chat",
        "hosted_vllm",
        "vllm",
        "lm_studio",
        "llamafile",
        "litellm_proxy",
        "custom_openai",
    }
)

#: Providers that need a key, and the environment variables LiteLLM reads it from (the
#: first is the one error messages name). Providers with other sign-in schemes (Azure,
#: Bedrock, Vertex AI, ...) and local servers are not checked.
KEY_VARIABLES: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_API_KEY",),
    "text-completion-openai": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "mistral": ("MISTRAL_API_KEY",),
    "groq": ("GROQ_API_KEY",),
    "together_ai": ("TOGETHERAI_API_KEY", "TOGETHER_API_KEY", "TOGETHER_AI_TOKEN"),
    "fireworks_ai": ("FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "FIREWORKSAI_API_KEY"),
    "deepseek": ("DEEPSEEK_API_KEY",),
    "xai": ("XAI_API_KEY",),
    "perplexity": ("PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"),
    "openrouter": ("OPENROUTER_API_KEY", "OR_API_KEY"),
    "cohere": ("COHERE_API_KEY", "CO_API_KEY"),
    "cohere_chat": ("COHERE_API_KEY", "CO_API_KEY"),
    "cerebras": ("CEREBRAS_API_KEY",),
    "deepinfra": ("DEEPINFRA_API_KEY",),
}
#: Where LiteLLM (and the lean transport) read a provider's endpoint when no ``api_base``
#: is given, in the order they are tried. Such an endpoint is like ``api_base``: possibly
#: a local server.
BASE_VARIABLES: dict[str, tuple[str, ...]] = {
    "openai": ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
    "text-completion-openai": ("OPENAI_BASE_URL", "OPENAI_API_BASE"),
    "hosted_vllm": ("HOSTED_VLLM_API_BASE",),
    "anthropic": ("ANTHROPIC_API_BASE", "ANTHROPIC_BASE_URL"),
}
_ENUM_VALUE = re.compile(r'^\s+[A-Z0-9_]+\s*=\s*"([^"]+)"', re.MULTILINE)


def provider_of(model: str) -> str | None:
    """``"openai"`` for ``"openai/gpt-4o"``; ``None`` for a name without a prefix."""
    prefix, sep, _ = model.partition("/")
    return prefix if sep else None


def check_model(model: str, *, any_prefix: bool = False) -> None:
    """Raise when ``model`` cannot be a valid ``"provider/model"`` string.

    Args:
        model: the model string given to :class:`dsx.LM`.
        any_prefix: the prefix need not be a provider (``transport="openai"`` sends names
            like ``meta-llama/Llama-3-8B`` as they are).

    Raises:
        BadRequestError: the provider or the model name is empty.
        ModelNotFoundError: the prefix is not a provider LiteLLM knows.
    """
    prefix, sep, name = model.partition("/")
    if not sep:
        return  # a bare name: LiteLLM infers the provider from its model list
    if not prefix:
        raise BadRequestError(
            f"LM({model!r}): the provider is missing before '/'. Write 'provider/model', "
            "e.g. 'openai/gpt-4o-mini'.",
            model=model,
        )
    if not name.strip("/ "):
        raise BadRequestError(
            f"LM({model!r}): the model name after '{prefix}/' is empty. Write "
            f"'{prefix}/<model>', e.g. {_example(prefix)!r}.",
            model=model,
        )
    if any_prefix or prefix in COMMON_PROVIDERS or prefix in known_providers():
        return
    close = difflib.get_close_matches(prefix.lower(), sorted(known_providers()), n=3, cutoff=0.6)
    hint = "Did you mean " + " or ".join(repr(f"{p}/{name}") for p in close) + "? " if close else ""
    raise ModelNotFoundError(
        f"LM({model!r}): unknown provider {prefix!r}. {hint}A model string is "
        "'provider/model' with a provider LiteLLM knows (openai, anthropic, gemini, "
        f"ollama_chat, hosted_vllm, ...). For a model served by an OpenAI-compatible "
        f"server (vLLM, llama.cpp, Ollama's /v1), write 'openai/{model}' with api_base=...",
        model=model,
    )


def missing_key(
    model: str, api_base: str | None, api_key: str | None
) -> AuthenticationError | None:
    """The error to raise when ``model``'s provider needs a key and none is set.

    A given ``api_base`` (or the provider's base-URL variable) may be a local server,
    which needs no key: then nothing is checked.
    """
    provider = provider_of(model)
    names = KEY_VARIABLES.get(provider or "")
    if api_key or api_base or names is None or provider is None:
        return None
    if any(os.environ.get(name) for name in names) or endpoint_from_env(model):
        return None
    return AuthenticationError(
        f"{model}: no API key for {provider}. Set {names[0]} in the environment or pass "
        f"api_key=... to dsx.LM. For a local server that speaks the {provider} API, pass "
        "api_base=... instead (it needs no key).",
        model=model,
    )


def endpoint_from_env(model: str) -> str | None:
    """The endpoint ``model`` goes to without ``api_base``, when a variable names one."""
    for name in BASE_VARIABLES.get(provider_of(model) or "", ()):
        value = os.environ.get(name)
        if value:
            return value
    return None


def _example(prefix: str) -> str:
    examples = {
        "openai": "openai/gpt-4o-mini",
        "anthropic": "anthropic/claude-3-5-haiku-latest",
        "gemini": "gemini/gemini-2.0-flash",
    }
    return examples.get(prefix, f"{prefix}/my-model")


def known_providers() -> frozenset[str]:
    """Every provider prefix LiteLLM routes (the common ones when LiteLLM is not installed)."""
    litellm = sys.modules.get("litellm")
    listed = getattr(litellm, "provider_list", None)
    if isinstance(listed, list) and listed:
        return COMMON_PROVIDERS | {str(getattr(p, "value", p)) for p in listed}
    return COMMON_PROVIDERS | _providers_from_source()


@cache
def _providers_from_source() -> frozenset[str]:
    """LiteLLM's ``LlmProviders`` values, read from its source without importing it."""
    import importlib.util
    from pathlib import Path

    try:  # find_spec locates the package without importing it
        spec = importlib.util.find_spec("litellm")
        for location in (spec.submodule_search_locations or []) if spec else []:
            path = Path(location) / "types" / "utils.py"
            if not path.is_file():
                continue
            text = path.read_text(encoding="utf-8")
            start = text.find("class LlmProviders(")
            if start < 0:
                continue
            end = text.find("\nclass ", start + 1)
            block = text[start : end if end > 0 else len(text)]
            # Stop at the first unindented line after the class header (the enum's end).
            body = re.split(r"\n(?=\S)", block, maxsplit=1)[0]
            return frozenset(_ENUM_VALUE.findall(body))
    except (ImportError, OSError, ValueError):
        pass
    return frozenset()
