"""The learned-state file: one versioned JSON format for every writer and reader.

``Module.save``, ``dsx optimize`` and ``dsx build`` write it; ``Module.load``,
``dsx.load_program(..., state=)``, ``dsx run|eval|test --state`` and ``dsx inspect`` read it.

Format (``schema_version`` 2)::

    {
      "format": "dsx-state",
      "schema_version": 2,
      "dsx_version": "0.1.0",
      "program": "classify",          # the .dsx program or the Python class
      "optimizer": "BootstrapFewShot", # null when saved by hand
      "score": 95.0,                   # the optimizer's best score, or null
      "fingerprint": "9f2c...",        # hash of the program's IR (toolchain-written files)
      "state": {
        "<predictor path>": {
          "signature": {"instructions": "...", "fields": [{"name", "kind", "type", "desc", "prefix"}]},
          "demos": [{...}],
          "lm": {"model": "...", ...} | null
        }
      }
    }

Version 1 files (``Module.save`` before the toolchain shared the format) and the bare
learned-state objects that ``dsx optimize`` used to write are still read.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsx._version import STATE_SCHEMA_VERSION, __version__
from dsx.errors import StateError

if TYPE_CHECKING:
    from dsx.runtime.module import Module

__all__ = ["STATE_FORMAT", "StateFile", "make_state", "parse_state", "read_state", "write_state"]

#: The ``format`` marker of a state file.
STATE_FORMAT = "dsx-state"
_READABLE = (1, STATE_SCHEMA_VERSION)


@dataclass(frozen=True)
class StateFile:
    """A parsed state file. ``predictors`` maps predictor paths to their saved state."""

    predictors: dict[str, dict[str, Any]]
    program: str | None = None
    optimizer: str | None = None
    score: float | None = None
    fingerprint: str | None = None
    dsx_version: str | None = None
    schema_version: int = STATE_SCHEMA_VERSION
    source: str = "<state>"
    extra: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """A short description: ``BootstrapFewShot, score 95.00``."""
        parts = [self.optimizer or "saved by hand"]
        if self.score is not None:
            parts.append(f"score {self.score:.2f}")
        return ", ".join(parts)

    def to_document(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "schema_version": STATE_SCHEMA_VERSION,
            "dsx_version": self.dsx_version or __version__,
            "program": self.program,
            "optimizer": self.optimizer,
            "score": self.score,
            "fingerprint": self.fingerprint,
            "state": self.predictors,
        }


def make_state(
    program: Module,
    *,
    name: str | None = None,
    optimizer: str | None = None,
    score: float | None = None,
    fingerprint: str | None = None,
) -> StateFile:
    """The state of ``program`` (its predictors' instructions, field texts, demos, LM settings)."""
    from dsx.runtime.module import Module

    return StateFile(
        predictors=Module.dump_state(program),
        program=name or type(program).__qualname__,
        optimizer=optimizer,
        score=score,
        fingerprint=fingerprint,
        dsx_version=__version__,
    )


def write_state(path: str | os.PathLike[str], state: StateFile) -> None:
    """Write ``state`` to ``path`` atomically: an interrupted write keeps the previous file."""
    path = Path(path)
    text = json.dumps(state.to_document(), indent=2, ensure_ascii=False, default=str)
    data = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_state(path: str | os.PathLike[str]) -> StateFile:
    """Read and check a state file; every problem is a :class:`~dsx.errors.StateError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StateError(f"No saved state at {path}") from None
    except IsADirectoryError:
        raise StateError(
            f"{path} is a directory; a state file is a .json file (a directory holds a whole "
            "program saved with save_program=True: load it with dsx.load(path, allow_pickle=True))"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"{path} is not a readable dsx state file: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StateError(f"{path} is not a readable dsx state file: {exc}") from None
    return parse_state(data, source=str(path))


def parse_state(data: Any, *, source: str = "<state>") -> StateFile:
    """A :class:`StateFile` from decoded JSON (any readable version)."""
    if not isinstance(data, dict):
        raise StateError(
            f"{source} is not a dsx state file: expected a JSON object, got {type(data).__name__}"
        )
    if "state" not in data and isinstance(data.get("predictors"), dict):
        return _from_learned(data, source)
    if "state" not in data:
        raise StateError(
            f"{source} is not a dsx state file (no 'state' object). State files are written "
            "by program.save('x.json'), `dsx optimize` and `dsx build`."
        )
    version = data.get("schema_version")
    if version not in _READABLE:
        raise StateError(
            f"{source} has state schema version {version!r} (written by dsx "
            f"{data.get('dsx_version', '?')}); this dsx {__version__} reads versions "
            f"{', '.join(map(str, _READABLE))}. Re-save it with a matching dsx."
        )
    predictors = data["state"]
    if not isinstance(predictors, dict) or not all(
        isinstance(v, dict) for v in predictors.values()
    ):
        raise StateError(
            f"{source}: 'state' must map predictor names to objects "
            '({"answer.predict": {"signature": ..., "demos": [...]}})'
        )
    score = data.get("score")
    known = {"format", "schema_version", "dsx_version", "program", "optimizer", "score"}
    return StateFile(
        predictors=predictors,
        program=_str_or_none(data.get("program")),
        optimizer=_str_or_none(data.get("optimizer")),
        score=float(score) if isinstance(score, int | float) else None,
        fingerprint=_str_or_none(data.get("fingerprint")),
        dsx_version=_str_or_none(data.get("dsx_version")),
        schema_version=int(version),
        source=source,
        extra={k: v for k, v in data.items() if k not in known | {"state", "fingerprint"}},
    )


def _from_learned(data: dict[str, Any], source: str) -> StateFile:
    """The bare ``{"optimizer", "score", "predictors"}`` object of older ``dsx optimize``."""
    predictors: dict[str, dict[str, Any]] = {}
    for path, p in data["predictors"].items():
        if not isinstance(p, dict):
            raise StateError(f"{source}: predictor {path!r} is not an object")
        entry: dict[str, Any] = {"demos": list(p.get("demos") or []), "lm": p.get("lm")}
        if p.get("instructions") is not None:
            entry["signature"] = {"instructions": p["instructions"]}
        predictors[path] = entry
    score = data.get("score")
    return StateFile(
        predictors=predictors,
        optimizer=_str_or_none(data.get("optimizer")),
        score=float(score) if isinstance(score, int | float) else None,
        schema_version=0,
        source=source,
    )


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
