"""Which LM a command uses: ``--lm MODEL``, else ``DSX_LM``; one message when there is none.

:func:`lm_settings` is also the LM factory every command hands to the build driver
(``dsx.compiler.build``), which imports nothing of the command line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from dsx.errors import NO_LM_MESSAGE, DsxError, NoLMError

__all__ = [
    "NO_LM_MESSAGE",
    "NoLMError",
    "lm_from_env",
    "lm_settings",
    "model_name",
    "override_declared",
    "parse_lm_options",
    "require_lm",
    "setup_lm",
]


def model_name(cli: str | None) -> str | None:
    """The model a command should use: ``--lm`` wins over ``DSX_LM``; ``None``: none named."""
    return cli or os.environ.get("DSX_LM") or None


def lm_from_env(model: str) -> Any:
    """``dsx.LM(model)`` with the endpoint from DSX_API_BASE / DSX_API_KEY when set.

    ``local`` (or ``local:PATH.gguf``) starts the local model server for this process.
    """
    return lm_settings(model)["lm"]


_ADAPTERS = {"json": "JSONAdapter", "chat": "ChatAdapter"}


def parse_lm_options(items: Sequence[str] | None, model: str | None) -> dict[str, Any]:
    """``--lm-option KEY=VALUE`` (repeatable) as LM settings for ``model``, each checked
    against the settings an ``lm`` declaration takes (JSON values: ``max_tokens=512``,
    ``stop='["\\n"]'``; anything else is a string).

    Raises:
        DsxError: an item is not ``KEY=VALUE``, names no such setting, has a wrong value,
            or there is no LM for it to apply to.
    """
    from dsx.cli._common import parse_value
    from dsx.runtime import resources

    if not items:
        return {}
    if not model:
        raise DsxError("--lm-option sets the command's LM; name it with --lm MODEL (or DSX_LM)")
    if model.startswith("hf/"):
        raise DsxError(f"--lm-option: {model} runs in process and takes no LM options")
    local = resources.is_local_model(model)
    registry = resources.LOCAL_LM_SETTINGS if local else resources.LM_DECL_SETTINGS
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise DsxError(
                f"--lm-option {item!r}: write KEY=VALUE, e.g. --lm-option max_tokens=512"
            )
        if key == "api_key_env" or key not in registry:
            where = "the local model has its own endpoint and no key; " if local else ""
            usable = ", ".join(k for k in registry if k != "api_key_env")
            raise DsxError(f"--lm-option {key}: no such LM option ({where}it takes: {usable})")
        value = parse_value(text)
        problem = resources.check_setting(registry, key, value)
        if problem is not None:
            raise DsxError(f"--lm-option {item}: {problem}")
        out[key] = value
    return out


def lm_settings(model: str, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What ``dsx.configure`` needs for ``model``: the LM, and the adapter when one is implied.

    ``local`` means the local model (an LM at temperature 0 and the JSON adapter, which is
    what a model that small needs); ``hf/DIR`` a Hugging Face causal LM or LoRA adapter
    saved in DIR (fine-tuned with ``BootstrapFinetune``), served in process;
    ``DSX_ADAPTER=json|chat`` picks the adapter explicitly. ``options`` (checked by
    :func:`parse_lm_options`) are the LM's settings (``max_tokens``, ``temperature``...).
    """
    import dsx
    from dsx.local import is_local, settings_for

    options = dict(options or {})
    if is_local(model):
        settings = dict(settings_for(model, **options))
    elif model.startswith("hf/"):  # a Hugging Face model or LoRA adapter on disk, in process
        from dsx.runtime.finetune.local import LocalLM

        settings = {"lm": LocalLM(model)}
    else:
        api_base = options.pop("api_base", None) or os.environ.get("DSX_API_BASE") or None
        api_key = os.environ.get("DSX_API_KEY") or ("dsx-local" if api_base else None)
        settings = {"lm": dsx.LM(model, api_base=api_base, api_key=api_key, **options)}
    choice = (os.environ.get("DSX_ADAPTER") or "").strip().lower()
    if choice:
        if choice not in _ADAPTERS:
            raise DsxError(f"DSX_ADAPTER={choice!r}: use one of {', '.join(_ADAPTERS)}")
        settings["adapter"] = getattr(dsx, _ADAPTERS[choice])()
    return settings


def setup_lm(name: str | None, options: Sequence[str] | None = None) -> str | None:
    """Configure the LM from --lm or DSX_LM, with ``--lm-option`` items; returns the model
    name used (None: keep settings)."""
    import dsx

    model = model_name(name)
    checked = parse_lm_options(options, model)
    if model:
        dsx.configure(**lm_settings(model, checked))
    return model


def require_lm(*programs: Any) -> None:
    """Raise :class:`NoLMError` unless an LM is configured or every predictor has its own."""
    import dsx

    if dsx.settings.lm is not None:
        return
    if programs and all(p.lm for prog in programs for p in prog.predictors()):
        return
    raise NoLMError()


def override_declared(model: str | None, *programs: Any) -> None:
    """``--lm-override``: predictors with a declared LM (``lm fast = ...``) use the
    command's LM instead."""
    if not model:
        raise DsxError("--lm-override needs the LM to use: --lm MODEL or DSX_LM")
    for program in programs:
        for _, predictor in program.named_predictors():
            if hasattr(predictor.lm, "_dsx_declared"):
                predictor.lm = None
