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
      },
      "selector": {"kind": "knn", ...}  # optional: KNNFewShot's per-call demos,
                                        # or {"kind": "ensemble", ...}: Ensemble's members
    }

A ``selector`` wraps the program at load time (``dsx.teleprompt.knn``): ``k``, the
embedder's model name, the trainset with each example's demos per predictor and the
trainset vectors (base64 float32). The embedder is named by its model only: an endpoint
or key there is refused like an LM's (below). An ``"ensemble"`` selector
(``dsx.teleprompt.ensemble``) holds each member's predictor state (checked like ``state``)
and the name of a registered reducer, never code.

Version 1 files (``Module.save`` before the toolchain shared the format) and the bare
learned-state objects that ``dsx optimize`` used to write are still read.

**Trust boundary.** State is data about the model's behaviour, never about where requests
go: a predictor's ``lm`` may carry only the settings in :data:`LM_STATE_SETTINGS` (what
``LM.dump_state`` writes). An endpoint, a key, headers (:data:`LM_ENDPOINT_KEYS`) or any
other key is refused with a :class:`~dsx.errors.StateError` naming it and its predictor,
unless the caller opts in with ``allow_endpoints=True``. :func:`check_predictor_state` is
the one check; every way state enters a program (``Module.load_state``, ``apply_learned``
for IR and generated modules, the build cache) goes through it before changing anything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsx._version import STATE_SCHEMA_VERSION, __version__
from dsx.errors import StateError
from dsx.runtime._files import atomic_write

if TYPE_CHECKING:
    from dsx.runtime.module import Module

__all__ = [
    "LM_ENDPOINT_KEYS",
    "LM_STATE_SETTINGS",
    "STATE_FORMAT",
    "StateFile",
    "check_lm_state",
    "check_predictor_state",
    "load_into",
    "make_state",
    "parse_state",
    "read_state",
    "write_state",
]

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
    #: A program-level selector (KNNFewShot's per-call demos), or ``None``.
    selector: dict[str, Any] | None = None

    def describe(self) -> str:
        """A short description: ``BootstrapFewShot, score 95.00``."""
        parts = [self.optimizer or "saved by hand"]
        if self.score is not None:
            parts.append(f"score {self.score:.2f}")
        return ", ".join(parts)

    def to_document(self) -> dict[str, Any]:
        doc = {
            "format": STATE_FORMAT,
            "schema_version": STATE_SCHEMA_VERSION,
            "dsx_version": self.dsx_version or __version__,
            "program": self.program,
            "optimizer": self.optimizer,
            "score": self.score,
            "fingerprint": self.fingerprint,
            "state": self.predictors,
        }
        if self.selector is not None:
            doc["selector"] = self.selector
        return doc


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
    from dsx.teleprompt.knn import dump_selector

    return StateFile(
        predictors=Module.dump_state(program),
        selector=dump_selector(program),
        program=name or type(program).__qualname__,
        optimizer=optimizer,
        score=score,
        fingerprint=fingerprint,
        dsx_version=__version__,
    )


def write_state(path: str | os.PathLike[str], state: StateFile) -> None:
    """Write ``state`` to ``path`` atomically: an interrupted write keeps the previous file.

    A new file gets the umask's default mode, an existing one keeps its mode (see
    :mod:`dsx.runtime._files`).
    """
    text = json.dumps(state.to_document(), indent=2, ensure_ascii=False, default=str)
    atomic_write(Path(path), text)


def read_state(path: str | os.PathLike[str]) -> StateFile:
    """Read and check a state file; every problem is a :class:`~dsx.errors.StateError`."""
    from dsx._textfile import TextFileError, read_text

    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise StateError(f"No saved state at {path}")
    if path.is_dir():
        raise StateError(
            f"{path} is a directory; a state file is a .json file (a directory holds a whole "
            "program saved with save_program=True: load it with dsx.load(path, allow_pickle=True))"
        )
    try:
        text = read_text(path, what="state file")  # a FIFO without a writer must not hang
    except TextFileError as exc:
        raise StateError(f"not a readable dsx state file: {exc}") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
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
    selector = data.get("selector")
    if selector is not None and not isinstance(selector, dict):
        raise StateError(f"{source}: 'selector' must be an object, got {_kind(selector)}")
    return StateFile(
        predictors=predictors,
        program=_str_or_none(data.get("program")),
        optimizer=_str_or_none(data.get("optimizer")),
        score=float(score) if isinstance(score, int | float) else None,
        fingerprint=_str_or_none(data.get("fingerprint")),
        dsx_version=_str_or_none(data.get("dsx_version")),
        schema_version=int(version),
        source=source,
        extra={
            k: v for k, v in data.items() if k not in known | {"state", "fingerprint", "selector"}
        },
        selector=selector,
    )


def load_into(
    program: Module, state: StateFile, *, name: str | None = None, allow_endpoints: bool = False
) -> Module:
    """Apply a state file to ``program``: its predictors' state, then its selector (all of
    it, or nothing: everything is checked first, see :meth:`Module.load_state`)."""
    from dsx.runtime.module import Module

    wrap = None
    if state.selector is not None:
        from dsx.teleprompt.knn import prepare_selector

        wrap = prepare_selector(
            program,
            state.selector,
            name or type(program).__name__,
            allow_endpoints=allow_endpoints,
        )
    Module.load_state(program, state.predictors, allow_endpoints=allow_endpoints)
    if wrap is not None:
        wrap()
    return program


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


# -- the trust boundary and the shape of a predictor's state ---------------------------------


def _number(v: Any) -> bool:
    return v is None or (isinstance(v, int | float) and not isinstance(v, bool))


def _int(minimum: int) -> Callable[[Any], bool]:
    return lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= minimum)


def _str(v: Any) -> bool:
    return v is None or isinstance(v, str)


def _stop(v: Any) -> bool:
    return _str(v) or (isinstance(v, list) and all(isinstance(s, str) for s in v))


def _finetune_ref(v: Any) -> bool:
    # Where a fine-tuned model came from: names and a hash only. A value that looks like
    # an endpoint (a URL) is refused, so the reference can never redirect requests.
    keys = {"provider", "model", "base_model", "data_hash", "job_id"}
    return (
        isinstance(v, Mapping)
        and set(v) <= keys
        and {"provider", "model"} <= set(v)
        and all(isinstance(x, str) and "://" not in x for x in v.values())
    )


#: LM settings a state file may carry, each with its check and what it expects: what
#: ``LM.dump_state`` writes that shapes the model's behaviour. Nothing here says where a
#: request goes or how it is authenticated.
LM_STATE_SETTINGS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model": (lambda v: isinstance(v, str) and bool(v), "a model name like 'openai/gpt-4o-mini'"),
    "model_type": (lambda v: v in ("chat", "text"), "'chat' or 'text'"),
    "temperature": (_number, "a number"),
    "top_p": (_number, "a number"),
    "presence_penalty": (_number, "a number"),
    "frequency_penalty": (_number, "a number"),
    "max_tokens": (_int(0), "a whole number >= 0"),
    "max_completion_tokens": (_int(0), "a whole number >= 0"),
    "n": (_int(1), "a whole number >= 1"),
    "seed": (_int(-(2**63)), "a whole number"),
    "top_logprobs": (_int(0), "a whole number >= 0"),
    "logprobs": (lambda v: v is None or isinstance(v, bool), "true or false"),
    "stop": (_stop, "a string or a list of strings"),
    "reasoning_effort": (_str, "a string"),
    "rollout_id": (lambda v: _str(v) or _int(-(2**63))(v), "a string or a whole number"),
    "cache": (lambda v: isinstance(v, bool), "true or false"),
    "num_retries": (_int(0), "a whole number >= 0"),
    "timeout": (lambda v: _number(v) and (v is None or v > 0), "a number of seconds > 0"),
    "transport": (lambda v: v in ("auto", "openai", "litellm"), "'auto', 'openai' or 'litellm'"),
    "finetuned": (
        lambda v: _finetune_ref(v),
        "a fine-tuned model reference {provider, model, base_model, data_hash, job_id} "
        "of strings (model names, never endpoints)",
    ),
}

#: LM keys that say where prompts go and with which credentials; never saved by dsx.
LM_ENDPOINT_KEYS = frozenset({"api_base", "base_url", "api_key", "headers", "extra_headers"})

#: DSPy's mark of the class that saved an LM's state, and the value for its own ``dspy.LM``.
LM_CLASS_MARKER = "_dspy_lm_class"
_DSPY_BUILTIN_LM = "dspy.clients.lm.LM"

_OPT_IN = (
    "Configure endpoints and keys in code (dsx.LM(..., api_base=...)) or the environment; if "
    "you trust this file, load it with allow_endpoints=True."
)


def check_lm_state(lm: Any, *, name: str, allow_endpoints: bool = False) -> dict[str, Any] | None:
    """The LM settings of predictor ``name``'s state, checked against the trust boundary.

    Raises:
        StateError: naming the predictor and the key, for an endpoint, key or header
            setting, an unknown key (unless ``allow_endpoints``) or a wrong-typed value.
    """
    where = f"{name}.lm"
    if lm is None:
        return None
    if not isinstance(lm, Mapping):
        raise StateError(
            f"Predictor {name!r}: {where} must be an object of LM settings "
            f'({{"model": "openai/gpt-4o-mini", "temperature": 0.0}}) or null, got {_kind(lm)}'
        )
    marker = lm.get(LM_CLASS_MARKER)
    if marker is not None and marker != _DSPY_BUILTIN_LM:
        raise StateError(
            f"Predictor {name!r}: {where}.{LM_CLASS_MARKER} names the LM class {marker!r}; "
            "state never imports classes from a file, trusted or not. Make that LM in code "
            "(predictor.lm = MyLM(...)) and drop the entry from the file: its other settings then "
            "apply to your LM."
        )
    lm = {k: v for k, v in lm.items() if k != LM_CLASS_MARKER}  # DSPy's own LM: dsx.LM
    for key, value in lm.items():
        rule = LM_STATE_SETTINGS.get(key)
        if rule is None:
            if allow_endpoints:
                continue
            if key in LM_ENDPOINT_KEYS:
                raise StateError(
                    f"Predictor {name!r}: the state sets {where}.{key}, which decides where "
                    "prompts and API keys are sent; state may carry only model settings. " + _OPT_IN
                )
            raise StateError(
                f"Predictor {name!r}: {where}.{key} is not an LM setting state may carry "
                f"(allowed: {', '.join(LM_STATE_SETTINGS)}). Set it on the LM in code; "
                "if you trust this file, load it with allow_endpoints=True."
            )
        check, expected = rule
        if not check(value):
            raise StateError(f"Predictor {name!r}: {where}.{key} must be {expected}, got {value!r}")
    if "model" not in lm:
        raise StateError(f"Predictor {name!r}: {where} has no `model`")
    return dict(lm)


def check_predictor_state(
    state: Any, *, name: str, allow_endpoints: bool = False
) -> dict[str, Any]:
    """Predictor ``name``'s state, checked: ``{"signature": dict | None, "demos": [dict],
    "lm": dict | None}``. Every malformed value is a :class:`StateError` naming its path
    (``answer.predict.demos[2]``); nothing is changed by checking."""
    if not isinstance(state, Mapping):
        raise StateError(
            f"Predictor {name!r}: {name} must be an object "
            f'({{"signature": ..., "demos": [...], "lm": ...}}), got {_kind(state)}'
        )
    unknown = [k for k in state if k not in _PREDICTOR_KEYS]
    if unknown:
        raise StateError(
            f"Predictor {name!r}: {name}.{unknown[0]} is not part of a predictor's state "
            "(it has signature, demos and lm)"
        )
    signature = state.get("signature")
    if signature is not None:
        signature = _check_signature(signature, name)
    demos = state.get("demos")
    if demos is None:
        demos = []
    if not isinstance(demos, list):
        raise StateError(f"Predictor {name!r}: {name}.demos must be a list, got {_kind(demos)}")
    for i, demo in enumerate(demos):
        if not isinstance(demo, Mapping) or not all(isinstance(k, str) for k in demo):
            raise StateError(
                f"Predictor {name!r}: {name}.demos[{i}] must be an object of field values, "
                f"got {_kind(demo)}"
            )
    return {
        "signature": signature,
        "demos": [dict(d) for d in demos],
        "lm": check_lm_state(state.get("lm"), name=name, allow_endpoints=allow_endpoints),
    }


#: The keys of one predictor's state; DSPy's ``traces`` and ``train`` are accepted, unused.
_PREDICTOR_KEYS = frozenset({"signature", "demos", "lm", "traces", "train"})


def _check_signature(signature: Any, name: str) -> dict[str, Any]:
    where = f"{name}.signature"
    if not isinstance(signature, Mapping):
        raise StateError(
            f"Predictor {name!r}: {where} must be an object "
            f'({{"instructions": "...", "fields": [...]}}), got {_kind(signature)}'
        )
    instructions = signature.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise StateError(
            f"Predictor {name!r}: {where}.instructions must be a string, got {_kind(instructions)}"
        )
    fields = signature.get("fields")
    if fields is None:
        fields = []
    if not isinstance(fields, list):
        raise StateError(f"Predictor {name!r}: {where}.fields must be a list, got {_kind(fields)}")
    for i, f in enumerate(fields):
        here = f"{where}.fields[{i}]"
        if not isinstance(f, Mapping):
            raise StateError(f"Predictor {name!r}: {here} must be an object, got {_kind(f)}")
        if not isinstance(f.get("name"), str):
            raise StateError(f"Predictor {name!r}: {here}.name must be a string")
        for key in ("kind", "type", "desc", "prefix"):
            if f.get(key) is not None and not isinstance(f[key], str):
                raise StateError(
                    f"Predictor {name!r}: {here}.{key} must be a string, got {_kind(f[key])}"
                )
    checked: dict[str, Any] = {"fields": [dict(f) for f in fields]}
    if instructions is not None:
        checked["instructions"] = instructions
    return checked


def _kind(value: Any) -> str:
    text = json.dumps(value, default=str) if value is not None else "null"
    return f"{type(value).__name__} {text[:40]}"
