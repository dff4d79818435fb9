"""Where an optimizer keeps what it needs to resume an interrupted run.

A run directory holds one subdirectory per *run key*: a hash of everything that defines
the result — the optimizer and its settings, the program's structure (signatures,
instructions, demos, LM names), the datasets and the metric's name. Running again with the
same inputs finds the same subdirectory and continues from what it holds; changing any
input starts afresh in a new one, so a stale run is never resumed by mistake.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dsx.runtime.example import Example
from dsx.runtime.module import Module

__all__ = ["program_fingerprint", "run_dir_for"]


def program_fingerprint(program: Module) -> list[dict[str, Any]]:
    """Per predictor: what of it decides what the program does."""
    out = []
    for path, p in program.named_predictors():
        sig = p.signature
        out.append(
            {
                "path": path,
                "kind": type(p).__name__,
                "signature": sig.signature,
                "instructions": sig.instructions,
                "fields": {name: [f.kind, f.desc] for name, f in sig.fields.items()},
                "demos": [_plain(d) for d in p.demos],
                "config": _plain(p.config),
                "lm": getattr(p.lm, "model", None),
            }
        )
    return out


def run_dir_for(
    root: str | Path,
    optimizer: str,
    *,
    program: Module,
    datasets: Sequence[Sequence[Example] | None],
    settings: dict[str, Any],
    metric: Callable[..., Any] | None,
) -> Path:
    """``root/<optimizer>-<key>``: the directory of this run's resumable state."""
    payload = {
        "optimizer": optimizer,
        "program": program_fingerprint(program),
        "data": [None if d is None else [_plain(ex) for ex in d] for d in datasets],
        "settings": settings,
        "metric": _name(metric),
    }
    text = json.dumps(payload, sort_keys=True, default=repr, ensure_ascii=False)
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Path(root) / f"{optimizer.lower()}-{key}"


def _plain(value: Any) -> Any:
    if isinstance(value, Example):
        return {"data": value.to_dict(), "inputs": sorted(value.input_keys or ())}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _name(metric: Callable[..., Any] | None) -> str | None:
    if metric is None:
        return None
    module = getattr(metric, "__module__", "") or ""
    name = getattr(metric, "__qualname__", None) or type(metric).__qualname__
    return f"{module}.{name}"
