"""Loading a program state saved by DSPy (``program.save("x.json")``) into a dsx program.

DSPy's file maps each predictor's name to its ``demos``, its signature (``instructions`` and
one ``{prefix, description}`` per field, in field order, without names) and its ``lm``
settings, plus a ``metadata`` entry. The predictor names are the same in dsx for the same
program (``respond.predict`` for a ``ChainOfThought`` called ``respond``), so the state maps
one to one: field names come from the dsx program's signatures, matched by position.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dsx.errors import StateError
from dsx.runtime.module import Module
from dsx.runtime.state import LM_CLASS_MARKER, LM_ENDPOINT_KEYS, LM_STATE_SETTINGS

__all__ = ["convert_dspy_state", "load_dspy_state"]

logger = logging.getLogger("dsx.compat")

#: DSPy's LM state keys with nothing to carry over (its class marker, fine-tuning leftovers).
_DSPY_ONLY_LM_KEYS = frozenset(
    {"_dspy_lm_class", "finetuning_model", "launch_kwargs", "train_kwargs", "provider"}
)


def load_dspy_state(
    program: Module, source: str | Path | Mapping[str, Any], *, allow_endpoints: bool = False
) -> Module:
    """Load DSPy-saved state (a ``.json`` path or the parsed dict) into ``program``.

    All or nothing, with dsx's checks: a predictor that does not fit is a
    :class:`~dsx.errors.StateError` naming it, and an LM endpoint, key or header in the file
    is refused unless ``allow_endpoints=True`` (DSPy drops them with a warning).
    """
    if isinstance(source, Mapping):
        state: Any = source
        where = "the state"
    else:
        path = Path(source)
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise StateError(f"Cannot read DSPy state {path}: {exc.strerror}") from None
        except ValueError as exc:
            raise StateError(f"{path} is not JSON ({exc}); DSPy saves state as JSON") from None
        where = str(path)
        if path.suffix == ".pkl":
            raise StateError(f"{path}: DSPy's pickled programs are not loaded; save as .json")
    return program.load_state(
        convert_dspy_state(program, state, where=where), allow_endpoints=allow_endpoints
    )


def convert_dspy_state(
    program: Module, state: Mapping[str, Any], *, where: str = "the state"
) -> dict[str, Any]:
    """dsx's state (what ``program.dump_state()`` gives) for DSPy's saved ``state``."""
    if not isinstance(state, Mapping):
        raise StateError(
            f"{where}: DSPy state is an object of predictors, got {type(state).__name__}"
        )
    predictors = dict(program.named_predictors())
    out: dict[str, Any] = {}
    for name, saved in state.items():
        if name == "metadata":
            continue
        predictor = predictors.get(name)
        if predictor is None or not isinstance(saved, Mapping):
            out[name] = saved  # load_state names what does not fit
            continue
        out[name] = _predictor(name, saved, predictor.signature, where)
    return out


def _predictor(name: str, saved: Mapping[str, Any], signature: Any, where: str) -> dict[str, Any]:
    converted: dict[str, Any] = {
        "demos": [_demo(d) for d in saved.get("demos") or []],
        "lm": _lm(name, saved.get("lm")),
    }
    sig = saved.get("signature")
    if isinstance(sig, Mapping):
        fields = list(signature.fields.values())
        saved_fields = sig.get("fields") or []
        if len(saved_fields) != len(fields):
            raise StateError(
                f"{where}: predictor {name!r} was saved with {len(saved_fields)} fields but the "
                f"program's has {len(fields)} ({', '.join(f.name for f in fields)}). The "
                "program changed since DSPy saved it."
            )
        converted["signature"] = {
            "instructions": sig.get("instructions", signature.instructions),
            "fields": [_field(f, s) for f, s in zip(fields, saved_fields, strict=True)],
        }
    return converted


def _field(field: Any, saved: Any) -> dict[str, Any]:
    saved = saved if isinstance(saved, Mapping) else {}
    desc = saved.get("description")
    if not isinstance(desc, str) or desc == f"${{{field.name}}}":
        desc = field.desc  # DSPy's placeholder for "no description"
    prefix = saved.get("prefix")
    prefix = prefix.rstrip(":").strip() if isinstance(prefix, str) else field.prefix
    return {
        "name": field.name,
        "kind": field.kind,
        "type": field.type_name,
        "desc": desc,
        "prefix": prefix or field.prefix,
    }


def _demo(demo: Any) -> Any:
    if isinstance(demo, Mapping):
        return {k: v for k, v in demo.items() if k != "augmented"}  # DSPy's bootstrap mark
    return demo


def _lm(name: str, lm: Any) -> Any:
    if not isinstance(lm, Mapping):
        return lm
    kept: dict[str, Any] = {}
    dropped = []
    for key, value in lm.items():
        if key == LM_CLASS_MARKER:
            if value is not None:
                kept[key] = value  # DSPy's own LM passes; another class is refused, named
            continue
        if key in _DSPY_ONLY_LM_KEYS:
            continue
        if key in LM_STATE_SETTINGS or key in LM_ENDPOINT_KEYS:
            if value is not None:
                kept[key] = value  # endpoints stay, for load_state to refuse or trust
        elif value not in (None, {}, []):
            dropped.append(key)
    if dropped:
        logger.warning(
            "Predictor %r: DSPy LM settings with no dsx equivalent were left out: %s",
            name,
            ", ".join(sorted(dropped)),
        )
    return kept
