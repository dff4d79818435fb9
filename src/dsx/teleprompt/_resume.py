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

__all__ = [
    "Journal",
    "ScoreJournal",
    "examples_from_json",
    "examples_to_json",
    "program_fingerprint",
    "run_dir_for",
    "save_json",
]

#: Run limits, not inputs: a run stopped by a budget resumes without it.
_LIMITS = frozenset({"max_lm_calls", "max_cost", "num_threads", "display_progress", "max_errors"})


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
        "settings": {k: v for k, v in settings.items() if k not in _LIMITS},
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


class Journal:
    """Values already computed in this run directory, appended one JSON line at a time.

    A line is written as soon as a value is known, so an interruption loses at most the
    work in flight; a torn last line (the process died mid-write) is ignored. Without a
    path it only remembers in memory.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.values: dict[str, Any] = {}
        if path is not None and path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    raw = entry["value"] if "value" in entry else entry["score"]
                    self.values[entry["key"]] = self._value(raw)
                except (ValueError, KeyError, TypeError):
                    continue

    @staticmethod
    def key(*parts: Any) -> str:
        return json.dumps(parts, sort_keys=True, default=repr)

    def _value(self, raw: Any) -> Any:
        return raw

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def put(self, key: str, value: Any) -> None:
        self.values[key] = value
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"key": key, "value": value}, ensure_ascii=False) + "\n")
            f.flush()


class ScoreJournal(Journal):
    """A :class:`Journal` of scores (floats)."""

    def _value(self, raw: Any) -> float:
        return float(raw)

    def get(self, key: str) -> float | None:
        return self.values.get(key)


def save_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON atomically (a crash leaves the old file or none)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, ensure_ascii=False, default=repr), encoding="utf-8")
    tmp.replace(path)


def examples_to_json(examples: Sequence[Example]) -> list[dict[str, Any]]:
    return [
        {"data": ex.to_dict(), "inputs": None if ex.input_keys is None else sorted(ex.input_keys)}
        for ex in examples
    ]


def examples_from_json(rows: list[dict[str, Any]]) -> list[Example]:
    out = []
    for row in rows:
        ex = Example(row["data"])
        out.append(ex if row["inputs"] is None else ex.with_inputs(*row["inputs"]))
    return out
