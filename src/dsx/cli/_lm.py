"""Which LM a command uses: ``--lm MODEL``, else ``DSX_LM``; one message when there is none.

:func:`lm_settings` is also the LM factory every command hands to the build driver
(``dsx.compiler.build``), which imports nothing of the command line.
"""

from __future__ import annotations

import os
from typing import Any

from dsx.errors import NO_LM_MESSAGE, DsxError, NoLMError

__all__ = [
    "NO_LM_MESSAGE",
    "NoLMError",
    "lm_from_env",
    "lm_settings",
    "model_name",
    "override_declared",
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


def lm_settings(model: str) -> dict[str, Any]:
    """What ``dsx.configure`` needs for ``model``: the LM, and the adapter when one is implied.

    ``local`` means the local model (an LM at temperature 0 and the JSON adapter, which is
    what a model that small needs); ``hf/DIR`` a Hugging Face causal LM or LoRA adapter
    saved in DIR (fine-tuned with ``BootstrapFinetune``), served in process;
    ``DSX_ADAPTER=json|chat`` picks the adapter explicitly.
    """
    import dsx
    from dsx.local import is_local, settings_for

    if is_local(model):
        settings = dict(settings_for(model))
    elif model.startswith("hf/"):  # a Hugging Face model or LoRA adapter on disk, in process
        from dsx.runtime.finetune.local import LocalLM

        settings = {"lm": LocalLM(model)}
    else:
        api_base = os.environ.get("DSX_API_BASE") or None
        api_key = os.environ.get("DSX_API_KEY") or ("dsx-local" if api_base else None)
        settings = {"lm": dsx.LM(model, api_base=api_base, api_key=api_key)}
    choice = (os.environ.get("DSX_ADAPTER") or "").strip().lower()
    if choice:
        if choice not in _ADAPTERS:
            raise DsxError(f"DSX_ADAPTER={choice!r}: use one of {', '.join(_ADAPTERS)}")
        settings["adapter"] = getattr(dsx, _ADAPTERS[choice])()
    return settings


def setup_lm(name: str | None) -> str | None:
    """Configure the LM from --lm or DSX_LM; returns the model name used (None: keep settings)."""
    import dsx

    model = model_name(name)
    if model:
        dsx.configure(**lm_settings(model))
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
