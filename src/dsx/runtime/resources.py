"""Named resources a ``.dsx`` program declares: ``lm`` and ``retriever``.

One registry, read by the checker (which settings exist, what each expects), the language
server (completion and hover) and both ways of running a program (the interpreter and the
modules ``dsx build`` writes), so that they agree::

    lm fast   = "openai/gpt-4o-mini" { temperature = 0, max_tokens = 200 }
    lm local  = "openai/llama-3.1-8b" { api_base = "http://127.0.0.1:8000/v1" }
    lm robust = fallback(fast, local) { retries = 2 }
    retriever wiki = Embeddings(corpus = "wiki.jsonl", embedder = "openai/text-embedding-3-small")

**Trust.** An ``lm`` declaration may say where requests go (``api_base``, ``headers``): the
program's author wrote it, like ``dsx.LM(..., api_base=...)`` in Python, and ``dsx
inspect`` and the editor's hover show it. It may not hold a key: ``api_key_env`` names the
environment variable that holds one. State files never set any of these
(:mod:`dsx.runtime.state`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dsx.errors import DsxError
from dsx.runtime.state import LM_STATE_SETTINGS

__all__ = [
    "FALLBACK_SETTINGS",
    "LM_DECL_SETTINGS",
    "LOCAL_LM_SETTINGS",
    "RETRIEVERS",
    "Resources",
    "RetrieverKind",
    "Setting",
    "check_setting",
    "is_local_model",
    "make_lm",
    "make_retriever",
]


@dataclass(frozen=True)
class Setting:
    """One setting: its check, what it expects (for messages) and a line of doc."""

    check: Callable[[Any], bool]
    expected: str
    doc: str = ""
    path: bool = False  # a file or folder, relative to the .dsx file


def _url(v: Any) -> bool:
    return isinstance(v, str) and re.match(r"https?://[^\s/]+", v) is not None


def _str_map(v: Any) -> bool:
    return isinstance(v, Mapping) and all(
        isinstance(k, str) and isinstance(x, str) for k, x in v.items()
    )


def _env_name(v: Any) -> bool:
    return isinstance(v, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) is not None


def _from_state(name: str, doc: str) -> Setting:
    check, expected = LM_STATE_SETTINGS[name]
    return Setting(lambda v: v is not None and check(v), expected, doc)


#: Settings of ``lm name = "provider/model" { ... }``: the model settings a state file may
#: carry (one list, :data:`dsx.runtime.state.LM_STATE_SETTINGS`) plus where requests go.
LM_DECL_SETTINGS: dict[str, Setting] = {
    "temperature": _from_state("temperature", "sampling temperature"),
    "max_tokens": _from_state("max_tokens", "the most tokens to generate"),
    "top_p": _from_state("top_p", "nucleus sampling"),
    "n": _from_state("n", "completions per request"),
    "stop": _from_state("stop", "stop sequences"),
    "seed": _from_state("seed", "sampling seed, where the provider supports it"),
    "presence_penalty": _from_state("presence_penalty", "penalty for repeated topics"),
    "frequency_penalty": _from_state("frequency_penalty", "penalty for repeated tokens"),
    "reasoning_effort": _from_state("reasoning_effort", "reasoning models' effort"),
    "model_type": _from_state("model_type", "'chat' (messages) or 'text' (completions)"),
    "cache": _from_state("cache", "look answers up in and store them in the dsx cache"),
    "num_retries": _from_state("num_retries", "retries after a retryable failure"),
    "timeout": _from_state("timeout", "seconds one attempt may take"),
    "transport": _from_state("transport", "how requests are sent"),
    "api_base": Setting(
        _url,
        'an http(s) URL like "http://127.0.0.1:8000/v1"',
        "the endpoint requests (and the provider's key) are sent to",
    ),
    "headers": Setting(_str_map, "a dict of strings", "extra HTTP headers sent with requests"),
    "api_key_env": Setting(
        _env_name,
        'the name of an environment variable, like "LOCAL_API_KEY"',
        "the environment variable holding the key (a key is never written in a .dsx file)",
    ),
}

#: Settings of ``lm name = "local" { ... }`` (the local model, see :mod:`dsx.local`): the
#: model settings; where requests go and the key are the local server's own.
LOCAL_LM_SETTINGS: dict[str, Setting] = {
    k: v for k, v in LM_DECL_SETTINGS.items() if k not in ("api_base", "headers", "api_key_env")
}


def is_local_model(model: str | None) -> bool:
    """Whether ``model`` names the local model: ``"local"`` or ``"local:PATH.gguf"`` (what
    ``--lm local`` takes; :func:`dsx.local.is_local` without importing it)."""
    return model is not None and (model == "local" or model.startswith("local:"))


#: Settings of ``lm name = fallback(a, b, ...) { ... }``.
FALLBACK_SETTINGS: dict[str, Setting] = {
    "retries": Setting(
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "a whole number >= 0",
        "how many more times to go through the whole chain after every LM failed",
    ),
}


def check_setting(registry: Mapping[str, Setting], key: str, value: Any) -> str | None:
    """What is wrong with ``key = value`` (``None``: nothing)."""
    setting = registry.get(key)
    if setting is None:
        return f"unknown setting `{key}`"
    if not setting.check(value):
        return f"`{key}` must be {setting.expected}, got {value!r}"
    return None


def make_lm(
    name: str,
    *,
    model: str | None = None,
    fallback: Sequence[Any] = (),
    settings: Mapping[str, Any] | Sequence[tuple[str, Any]] = (),
) -> Any:
    """The LM an ``lm`` declaration describes (``fallback``: the LMs already made)."""
    values = dict(settings)
    if fallback:
        from dsx.runtime.fallback import FallbackLM

        lm: Any = FallbackLM(list(fallback), retries=values.get("retries", 0), name=name)
    elif is_local_model(model):
        from dsx.local import LocalModelError, LocalModelUnavailable, lm_for

        try:  # started on first use, shared by the process, stopped at exit
            lm = lm_for(model or "", **values)
        except (LocalModelUnavailable, LocalModelError) as exc:
            raise DsxError(f"lm `{name}` = {model!r}: {exc}") from None
    else:
        from dsx.runtime.lm import LM

        env = values.pop("api_key_env", None)
        if env is not None:
            key = os.environ.get(env)
            if not key:
                raise DsxError(
                    f"lm `{name}`: api_key_env = {env!r}, but the environment variable {env} is "
                    f"not set; set it (export {env}=...) or remove api_key_env to use the "
                    "provider's usual variable"
                )
            values["api_key"] = key
        try:
            lm = LM(model or "", **values)
        except (DsxError, ValueError, TypeError) as exc:
            raise DsxError(f"lm `{name}` = {model!r}: {exc}") from None
    lm._dsx_declared = name  # set by the program: learned state leaves it alone
    return lm


# -- retrievers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrieverKind:
    """A retriever a ``retriever`` declaration may build, with its settings."""

    name: str
    doc: str
    settings: dict[str, Setting]
    required: tuple[str, ...] = ()
    build: Callable[[dict[str, Any]], Any] = field(default=lambda s: None, repr=False)


def _k() -> Setting:
    return Setting(
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
        "a whole number >= 1",
        "passages per query when `Retrieve` gives no k",
    )


def _text(doc: str, *, path: bool = False) -> Setting:
    return Setting(lambda v: isinstance(v, str) and bool(v), "a non-empty string", doc, path)


_EMBEDDER = _text('the embedding model, e.g. "openai/text-embedding-3-small"')
_EMBEDDER_BASE = Setting(
    _url,
    'an http(s) URL like "http://127.0.0.1:8000/v1"',
    "the endpoint the embedder sends passages and queries (and the provider's key) to",
)


def _embedder(s: dict[str, Any]) -> Any:
    from dsx.runtime.embedder import Embedder

    return Embedder(s["embedder"], api_base=s.get("embedder_api_base"))


def _corpus(path: str) -> list[str]:
    """Passages from a file: ``.jsonl`` (a string, or an object's ``text``) or one per line."""
    import json

    from dsx._textfile import TextFileError, read_text

    try:
        text = read_text(Path(path), what="corpus")
    except TextFileError as exc:
        raise DsxError(str(exc)) from None
    if path.endswith(".jsonl"):
        passages = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DsxError(f"{path} line {i} is not JSON: {exc}") from None
            value = row.get("text") if isinstance(row, dict) else row
            if not isinstance(value, str):
                raise DsxError(f'{path} line {i}: expected a string or {{"text": "..."}}')
            passages.append(value)
        return passages
    return [line for line in text.splitlines() if line.strip()]


def _build_embeddings(s: dict[str, Any]) -> Any:
    from dsx.retrievers import Embeddings

    return Embeddings(_corpus(s["corpus"]), _embedder(s), k=s.get("k", 5))


def _build_faiss(s: dict[str, Any]) -> Any:
    from dsx.retrievers import Embeddings

    retriever = Embeddings.from_saved(s["path"], _embedder(s))
    if "k" in s:
        retriever.k = s["k"]
    return retriever


def _build_chroma(s: dict[str, Any]) -> Any:
    from dsx.retrievers import ChromadbRM

    return ChromadbRM(s["collection"], s.get("path"), embedder=_embedder(s), k=s.get("k", 7))


def _build_qdrant(s: dict[str, Any]) -> Any:
    from dsx.retrievers import QdrantRM

    return QdrantRM(
        s["collection"],
        k=s.get("k", 3),
        embedder=_embedder(s),
        path=s.get("path"),
        url=s.get("url"),
        document_field=s.get("document_field", "document"),
    )


def _build_colbert(s: dict[str, Any]) -> Any:
    from dsx.retrievers import ColBERTv2

    return ColBERTv2(
        s["url"], k=s.get("k", 10), timeout=s.get("timeout", 10.0), cache=s.get("cache", True)
    )


#: The retrievers a ``retriever`` declaration may build (``dsx.retrievers``).
RETRIEVERS: dict[str, RetrieverKind] = {
    r.name: r
    for r in (
        RetrieverKind(
            "Embeddings",
            "Nearest passages by embedding similarity, in memory, from a corpus file.",
            {
                "corpus": _text(
                    "passages: a .jsonl file (strings or {text}) or a text file, one per line",
                    path=True,
                ),
                "embedder": _EMBEDDER,
                "embedder_api_base": _EMBEDDER_BASE,
                "k": _k(),
            },
            ("corpus", "embedder"),
            _build_embeddings,
        ),
        RetrieverKind(
            "FAISS",
            "A saved Embeddings index (`dsx index DATA --into faiss:DIR`), searched in memory.",
            {
                "path": _text("the index folder", path=True),
                "embedder": _text("the embedding model the index was built with"),
                "embedder_api_base": _EMBEDDER_BASE,
                "k": _k(),
            },
            ("path", "embedder"),
            _build_faiss,
        ),
        RetrieverKind(
            "Chroma",
            "A Chroma collection stored in a folder (embedded, no server).",
            {
                "path": _text("the Chroma folder", path=True),
                "collection": _text("the collection's name"),
                "embedder": _EMBEDDER,
                "embedder_api_base": _EMBEDDER_BASE,
                "k": _k(),
            },
            ("path", "collection", "embedder"),
            _build_chroma,
        ),
        RetrieverKind(
            "Qdrant",
            "A Qdrant collection: embedded in a folder (`path`) or on a server (`url`).",
            {
                "path": _text("the folder of an embedded Qdrant", path=True),
                "url": Setting(_url, "an http(s) URL", "a Qdrant server"),
                "collection": _text("the collection's name"),
                "embedder": _EMBEDDER,
                "embedder_api_base": _EMBEDDER_BASE,
                "document_field": _text("the payload field holding the passage"),
                "k": _k(),
            },
            ("collection", "embedder"),
            _build_qdrant,
        ),
        RetrieverKind(
            "ColBERTv2",
            "A ColBERTv2 server.",
            {
                "url": Setting(_url, "an http(s) URL", "the server, port included"),
                "timeout": Setting(
                    lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v > 0,
                    "a number of seconds > 0",
                    "seconds one request may take",
                ),
                "cache": Setting(lambda v: isinstance(v, bool), "true or false", "cache answers"),
                "k": _k(),
            },
            ("url",),
            _build_colbert,
        ),
    )
}


def make_retriever(
    name: str, kind: str, settings: Mapping[str, Any] | Sequence[tuple[str, Any]], base: Path
) -> Any:
    """The retriever a ``retriever`` declaration describes; relative paths are resolved
    against ``base`` (the .dsx file's folder)."""
    spec = RETRIEVERS.get(kind)
    if spec is None:
        raise DsxError(f"retriever `{name}`: unknown kind {kind!r} (have {', '.join(RETRIEVERS)})")
    values = dict(settings)
    for key, value in values.items():
        setting = spec.settings.get(key)
        if setting is not None and setting.path and isinstance(value, str):
            values[key] = str(base / value)
    try:
        return spec.build(values)
    except DsxError as exc:
        raise DsxError(f"retriever `{name}` ({kind}): {exc}") from None
    except (ValueError, TypeError, OSError) as exc:
        raise DsxError(f"retriever `{name}` ({kind}): {exc}") from None


class Resources:
    """The resources a unit declares, each made once on first use (a retriever may embed
    a corpus; a program that does not use it never pays for that).

    :meth:`factories` gives the names the interpreter binds: a program refers to a
    resource as a call of its name (``fast()``), as the modules ``dsx build`` writes do.
    """

    def __init__(self, lms: Sequence[Any], retrievers: Sequence[Any], base: Path) -> None:
        self._lms = {d.name: d for d in lms}
        self._retrievers = {d.name: d for d in retrievers}
        self._base = base
        self._made: dict[str, Any] = {}
        import functools

        # Built once: the interpreter binds them for every forward call.
        self._factories: dict[str, Callable[[], Any]] = {
            n: functools.partial(self.get, n) for n in (*self._lms, *self._retrievers)
        }

    def factories(self) -> dict[str, Callable[[], Any]]:
        return self._factories

    def make_none(self) -> None:
        """Bind every resource to ``None`` instead (the editor's prompt preview renders
        prompts: it must neither embed a corpus nor need an LM's key)."""
        self._factories.update((name, _none) for name in self._factories)

    def get(self, name: str) -> Any:
        if name not in self._made:
            if name in self._lms:
                d = self._lms[name]
                self._made[name] = make_lm(
                    name,
                    model=d.model,
                    fallback=[self.get(n) for n in d.fallback],
                    settings=d.settings,
                )
            else:
                d = self._retrievers[name]
                self._made[name] = make_retriever(name, d.kind, d.settings, self._base)
        return self._made[name]


def _none() -> None:
    return None
