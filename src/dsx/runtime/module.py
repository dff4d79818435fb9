"""``Module``: the base class of every dsx program.

A module defines ``forward`` (sync) and/or ``aforward`` (async); ``module(...)`` and
``await module.acall(...)`` run them, tracking the LM usage of the call on the returned
:class:`~dsx.Prediction`. Sub-modules and predictors are found by walking attributes.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dsx._version import STATE_SCHEMA_VERSION, __version__
from dsx.errors import DsxError, StateError
from dsx.runtime import callbacks as _cb
from dsx.runtime._files import atomic_write
from dsx.runtime.assertions import Backtrack, BacktrackScope, scope_var
from dsx.runtime.lm_base import BaseLM, UsageTracker, _callers, _trackers, pretty_print_history
from dsx.runtime.prediction import Prediction
from dsx.runtime.settings import settings

if TYPE_CHECKING:
    from dsx.runtime.adapters.base import Message
    from dsx.runtime.predict import Predict

__all__ = ["Module", "load"]


class _History:
    """``module.history``: the LM calls made during this module's calls (its own and its
    sub-modules'), oldest first, at most ``dsx.settings.max_history_size`` (DSPy's
    per-module history; ``disable_history=True`` records none). A non-data descriptor, so
    a module's own attribute named ``history`` (a predictor, say) takes its place."""

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        found = obj.__dict__.get("_history")
        if found is None:
            found = obj.__dict__["_history"] = []
        return found


class Module:
    """Base class of programs. Subclass it, create sub-modules in ``__init__``, define ``forward``."""

    #: Callbacks of this module only (after ``dsx.settings.callbacks``); see ``dsx.BaseCallback``.
    callbacks = _cb.CallbackList()

    def __init__(self, *, callbacks: Sequence[Any] | None = None) -> None:
        if callbacks:
            self.callbacks = callbacks

    # -- running --------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _cb.enabled:
            hooks = _cb.active(self)
            if hooks:
                inputs = {"args": args, "kwargs": kwargs}
                return _cb.call_sync("module", self, hooks, inputs, self._run, args, kwargs)
        return self._run(args, kwargs)

    def _run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if scope_var.get() is None and self._backtracks:
            return self._call_with_backtracking(args, kwargs)
        parent = _trackers.get()
        tracker = UsageTracker()
        token = _trackers.set(tracker)
        callers = _callers.set((*_callers.get(), self))
        try:
            result = self.forward(*args, **kwargs)
        finally:
            _callers.reset(callers)
            _trackers.reset(token)
            if parent is not None:
                parent.merge(tracker)
        if isinstance(result, Prediction):
            result._lm_usage = tracker.totals()
        return result

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        if _cb.enabled:
            hooks = _cb.active(self)
            if hooks:
                inputs = {"args": args, "kwargs": kwargs}
                return await _cb.call_async("module", self, hooks, inputs, self._arun, args, kwargs)
        return await self._arun(args, kwargs)

    async def _arun(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if scope_var.get() is None and self._backtracks:
            return await self._acall_with_backtracking(args, kwargs)
        parent = _trackers.get()
        tracker = UsageTracker()
        token = _trackers.set(tracker)
        callers = _callers.set((*_callers.get(), self))
        try:
            result = await self.aforward(*args, **kwargs)
        finally:
            _callers.reset(callers)
            _trackers.reset(token)
            if parent is not None:
                parent.merge(tracker)
        if isinstance(result, Prediction):
            result._lm_usage = tracker.totals()
        return result

    #: Whether a call of this module opens a backtracking scope for Assert/Suggest.
    #: Predictors do not (no check can run inside them); programs do.
    _backtracks = True

    def _call_with_backtracking(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        scope = BacktrackScope(settings.max_backtracks)
        token = scope_var.set(scope)
        try:
            while True:
                try:
                    return self._run(args, kwargs)
                except Backtrack as signal:
                    _prepare_retry(scope, signal)
        finally:
            scope_var.reset(token)

    async def _acall_with_backtracking(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        scope = BacktrackScope(settings.max_backtracks)
        token = scope_var.set(scope)
        try:
            while True:
                try:
                    return await self._arun(args, kwargs)
                except Backtrack as signal:
                    _prepare_retry(scope, signal)
        finally:
            scope_var.reset(token)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if type(self).aforward is Module.aforward:
            raise NotImplementedError(f"{type(self).__name__} must define forward() or aforward()")
        import asyncio

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.aforward(*args, **kwargs))
        raise DsxError(
            f"{type(self).__name__} only defines aforward(); inside a running event loop call "
            f"`await module.acall(...)` instead of `module(...)`"
        )

    async def aforward(self, *args: Any, **kwargs: Any) -> Any:
        if type(self).forward is Module.forward:
            raise NotImplementedError(f"{type(self).__name__} must define forward() or aforward()")
        # A sync-only module: run it off the event loop (the context, hence settings, is copied).
        import asyncio

        return await asyncio.to_thread(self.forward, *args, **kwargs)

    def batch(
        self,
        examples: Sequence[Any],
        *,
        num_threads: int | None = None,
        max_errors: int | None = None,
        return_failed_examples: bool = False,
        provide_traceback: bool = False,
    ) -> Any:
        """Run the module on many examples concurrently; results keep the input order.

        Args:
            examples: ``dsx.Example`` objects (their inputs are used) or dicts of inputs.
            num_threads: how many run at once (default: ``dsx.settings.num_threads``).
            max_errors: stop after this many failures (default: ``dsx.settings.max_errors``).
            return_failed_examples: also return ``(failed_examples, exceptions)``.
        """
        from dsx.runtime.parallel import run_batch

        return run_batch(
            self,
            examples,
            num_threads=num_threads,
            max_errors=max_errors,
            return_failed_examples=return_failed_examples,
            provide_traceback=provide_traceback,
        )

    # -- history --------------------------------------------------------------------------
    def _add_history(self, entry: dict[str, Any], size: int) -> None:
        entries = self.__dict__.get("_history")
        if entries is None:
            entries = self.__dict__["_history"] = []
        if size <= 0:
            return
        entries.append(entry)
        if len(entries) > size:
            del entries[: len(entries) - size]

    history = _History()

    def inspect_history(self, n: int = 1) -> str:
        """The last ``n`` LM calls of ``history``, as text (also printed)."""
        text = pretty_print_history(list(self.__dict__.get("_history") or [])[-n:])
        print(text)
        return text

    # -- structure ------------------------------------------------------------------------
    def named_sub_modules(
        self, type_: type | None = None, skip_compiled: bool = False
    ) -> Iterator[tuple[str, Module]]:
        """Every module reachable from this one (itself as ``"self"``), breadth first."""
        type_ = type_ or Module
        seen = {id(self)}
        queue: list[tuple[str, Any]] = [("self", self)]
        while queue:
            name, obj = queue.pop(0)
            if isinstance(obj, type_):
                yield name, obj  # type: ignore[misc]
            if isinstance(obj, Module):
                if skip_compiled and getattr(obj, "_compiled", False) and obj is not self:
                    continue
                for sub_name, sub in _children(obj, "" if name == "self" else name):
                    if id(sub) not in seen:
                        seen.add(id(sub))
                        queue.append((sub_name, sub))

    def named_predictors(self) -> list[tuple[str, Predict]]:
        """``(name, predictor)`` for every :class:`~dsx.Predict` in this program."""
        from dsx.runtime.predict import Predict

        if isinstance(self, Predict):
            return [("self", self)]
        return [(name, mod) for name, mod in self.named_sub_modules(Predict) if name != "self"]  # type: ignore[misc]

    def predictors(self) -> list[Predict]:
        return [p for _, p in self.named_predictors()]

    def named_parameters(self) -> list[tuple[str, Predict]]:
        """DSPy's ``named_parameters``: the predictors of :meth:`named_predictors`, under the
        same names, in DSPy's order — attribute by attribute, each sub-module's predictors
        where it stands (``("self", p)`` for a bare :class:`~dsx.Predict`)."""
        from dsx.runtime.predict import Predict

        if isinstance(self, Predict):
            return [("self", self)]
        found: list[tuple[str, Predict]] = []
        seen = {id(self)}

        def walk(module: Module, prefix: str) -> None:
            for name, child in _children(module, prefix):
                if id(child) in seen:
                    continue
                seen.add(id(child))
                if isinstance(child, Predict):
                    found.append((name, child))
                else:
                    walk(child, name)

        walk(self, "")
        return found

    def parameters(self) -> list[Predict]:
        """DSPy's ``parameters``: the predictors, in :meth:`named_parameters`' order."""
        return [p for _, p in self.named_parameters()]

    def map_named_predictors(self, func: Any) -> Module:
        """Replace each predictor by ``func(predictor)`` in place."""
        for name, predictor in self.named_predictors():
            _set_by_path(self, name, func(predictor))
        return self

    # -- copies ---------------------------------------------------------------------------
    def deepcopy(self) -> Module:
        """A deep copy; LMs are shared, not copied."""
        return copy.deepcopy(self)

    def reset_copy(self) -> Module:
        """A deep copy with every predictor reset (no demos, no LM, default instructions)."""
        new = self.deepcopy()
        for predictor in new.predictors():
            predictor.reset()
        return new

    # -- LMs ------------------------------------------------------------------------------
    def set_lm(self, lm: BaseLM | None) -> None:
        """Use ``lm`` for every predictor of this program."""
        for predictor in self.predictors():
            predictor.lm = lm

    def get_lm(self) -> BaseLM | None:
        lms = {id(p.lm): p.lm for p in self.predictors()}
        if len(lms) > 1:
            raise DsxError(
                f"{type(self).__name__}'s predictors use {len(lms)} different LMs; "
                "read predictor.lm on each instead"
            )
        return next(iter(lms.values()), None)

    # -- state ----------------------------------------------------------------------------
    def dump_state(self) -> dict[str, Any]:
        """Learned state per predictor: instructions, field texts, demos, LM settings."""
        return {name: p.dump_state() for name, p in self.named_predictors()}

    def load_state(self, state: dict[str, Any], *, allow_endpoints: bool = False) -> Module:
        """Load state from :meth:`dump_state`; it must fit this program's predictors.

        Everything is checked before anything changes: a malformed value is a
        :class:`~dsx.errors.StateError` naming its path (``answer.predict.demos[2]``) and
        leaves the program as it was. State carries model settings only (the trust boundary
        in ``docs/runtime.md``): an LM endpoint, key, headers or unknown LM setting is
        refused unless ``allow_endpoints=True``, for state you trust.
        """
        if not isinstance(state, dict):
            raise StateError(
                f"The state of {type(self).__name__} must be an object mapping predictor names "
                f"to their state, got {type(state).__name__}"
            )
        predictors = dict(self.named_predictors())
        missing = [n for n in predictors if n not in state]
        extra = [n for n in state if n not in predictors]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"no state for predictor(s) {', '.join(map(repr, missing))}")
            if extra:
                parts.append(f"state for unknown predictor(s) {', '.join(map(repr, extra))}")
            raise StateError(
                f"The saved state does not fit {type(self).__name__}: {'; '.join(parts)}. "
                f"The program has predictors {sorted(predictors)}."
            )
        steps = [
            predictor._prepare_state(state[name], name=name, allow_endpoints=allow_endpoints)
            for name, predictor in predictors.items()
        ]
        for apply in steps:
            apply()
        return self

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        save_program: bool = False,
        allow_pickle: bool = False,
        allow_unsafe_lm_state: bool = False,
    ) -> None:
        """Save learned state as JSON (default), or the whole program (needs ``allow_pickle``).

        The JSON file records the dsx version and the state schema version. The write is
        atomic: an interrupted save never leaves a half-written file.

        A predictor's LM is saved as model settings only: its endpoint (``api_base``), key
        and headers are left out, with a warning naming what was left out. With
        ``allow_unsafe_lm_state=True`` the endpoint is saved too (keys and headers never
        are); loading it then needs ``allow_endpoints=True``, as for any file that says
        where prompts go.
        """
        path = Path(path)
        meta = {"dsx_version": __version__, "schema_version": STATE_SCHEMA_VERSION}
        if save_program:
            if not allow_pickle:
                raise DsxError(
                    "Saving the whole program uses pickle, which runs code when loaded; pass "
                    "allow_pickle=True to opt in, or save only the state (the default)."
                )
            path.mkdir(parents=True, exist_ok=True)
            import pickle

            atomic_write(path / "program.pkl", pickle.dumps(self))
            atomic_write(
                path / "metadata.json",
                json.dumps({**meta, "program": type(self).__qualname__}, indent=2).encode(),
            )
            return
        if path.suffix != ".json":
            raise DsxError(
                f"Program state is saved as JSON: use a path ending in .json (got {path})"
            )
        # The one state format (dsx.runtime.state), also for a bare Predict.
        from dsx.runtime.state import make_state, write_state

        state = make_state(self)
        _lm_endpoints(self, state.predictors, path, keep=allow_unsafe_lm_state)
        write_state(path, state)

    def load(
        self,
        path: str | os.PathLike[str],
        *,
        allow_pickle: bool = False,
        allow_endpoints: bool = False,
        allow_unsafe_lm_state: bool = False,
    ) -> Module:
        """Load state saved by :meth:`save` into this program (all of it, or nothing).

        A state file saved by DSPy (``program.save("x.json")`` there) is recognised by its
        ``metadata.dependency_versions.dspy`` entry and loaded through
        :func:`dsx.compat.dspy.load_dspy_state`, with the same checks.

        Args:
            path: the ``.json`` state file.
            allow_pickle: accepted for DSPy compatibility; a ``.pkl`` path needs it.
            allow_endpoints: trust the file's LM endpoints, keys, headers and other LM
                settings outside the model-settings allow-list; without it they are refused
                with a :class:`~dsx.errors.StateError`.
            allow_unsafe_lm_state: DSPy's name for ``allow_endpoints``.
        """
        path = Path(path)
        if path.suffix in (".pkl", ".pickle") and not allow_pickle:
            raise DsxError(
                f"{path} is a pickle; loading it runs code. Pass allow_pickle=True if you trust it."
            )
        from dsx.runtime.state import load_into, read_state

        trusted = allow_endpoints or allow_unsafe_lm_state
        try:
            state = read_state(path)
        except StateError:
            dspy_state = _dspy_saved_state(path)
            if dspy_state is None:
                raise
            from dsx.compat.dspy import load_dspy_state

            return load_dspy_state(self, dspy_state, allow_endpoints=trusted)
        return load_into(self, state, allow_endpoints=trusted)

    # -- prompts --------------------------------------------------------------------------
    def render(self, **inputs: Any) -> list[Message] | dict[str, list[Message]]:
        """The messages this module's predictors would send, without calling the LM.

        A module with one predictor (``ChainOfThought``, most agents' single step) returns
        that predictor's messages for ``inputs``. With several predictors, what reaches each
        one is only known by running ``forward``, so this renders every predictor whose
        required inputs are all among ``inputs`` (each gets the ones it declares) and returns
        ``{predictor name: messages}``. It raises :class:`~dsx.DsxError` naming what each
        predictor needs when none can be rendered, or when an input is used by none.
        """
        predictors = self.named_predictors()
        if not predictors:
            raise DsxError(f"{type(self).__name__} has no predictors, so it has no prompt")
        if len(predictors) == 1:
            return predictors[0][1].render(**inputs)
        return _render_each(type(self).__name__, predictors, inputs)

    # -- display --------------------------------------------------------------------------
    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        for name, p in self.named_predictors():
            lines.append(f"  {name} = {p!r}")
        lines.append(")")
        return "\n".join(lines) if len(lines) > 2 else f"{type(self).__name__}()"


def _render_each(
    owner: str, predictors: list[tuple[str, Predict]], inputs: dict[str, Any]
) -> dict[str, list[Message]]:
    needs: dict[str, list[str]] = {}
    for name, predictor in predictors:
        sig = predictor.signature
        needs[name] = [f for f in sig.input_fields if f in sig._required_inputs]
    used = {f for _, p in predictors for f in p.signature.input_fields}
    unused = [k for k in inputs if k not in used]
    rendered = {
        name: predictor.render(
            **{k: v for k, v in inputs.items() if k in predictor.signature.input_fields}
        )
        for name, predictor in predictors
        if all(f in inputs for f in needs[name])
    }
    if rendered and not unused:
        return rendered
    wants = "; ".join(f"`{n}` needs {', '.join(f) or 'nothing'}" for n, f in needs.items())
    problem = (
        f"no predictor takes the input{'s' if len(unused) > 1 else ''} "
        f"{', '.join(f'`{u}`' for u in unused)}"
        if unused
        else f"no predictor has all its inputs among {', '.join(f'`{k}`' for k in inputs)}"
        if inputs
        else "no inputs were given"
    )
    raise DsxError(
        f"Cannot render {owner}: {problem}. It has {len(predictors)} predictors and what "
        f"each receives is only known by running it; pass the inputs of the ones to render "
        f"({wants}), or call predictor.render(...) on one of them."
    )


def _prepare_retry(scope: BacktrackScope, signal: Backtrack) -> None:
    scope.remaining -= 1
    previous = scope.outputs.get(id(signal.target))
    outputs = previous.to_dict() if previous is not None else {}
    scope.feedback[id(signal.target)] = (signal.message, outputs)
    scope.last = None
    scope.outputs.clear()


def _children(obj: Module, prefix: str) -> Iterator[tuple[str, Any]]:
    def join(name: str) -> str:
        return f"{prefix}.{name}" if prefix else name

    for key, value in vars(obj).items():
        if key.startswith("_") and key != "_compiled":
            continue
        if isinstance(value, Module):
            yield join(key), value
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                if isinstance(item, Module):
                    yield f"{join(key)}[{i}]", item
        elif isinstance(value, dict):
            for k, item in value.items():
                if isinstance(item, Module):
                    yield f"{join(key)}[{k!r}]", item


def _set_by_path(root: Module, path: str, value: Any) -> None:
    import re

    parts = re.findall(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[('[^']*'|\"[^\"]*\")\]", path)
    target: Any = root
    steps: list[Any] = []
    for attr, index, key in parts:
        steps.append(attr or (int(index) if index else key[1:-1]))
    for step in steps[:-1]:
        target = (
            getattr(target, step)
            if isinstance(step, str) and not isinstance(target, dict)
            else target[step]
        )
    last = steps[-1]
    if isinstance(target, list | dict):
        target[last] = value
    else:
        setattr(target, last, value)


def _check_schema(data: dict[str, Any], path: Path) -> None:
    version = data.get("schema_version")
    if version not in (1, STATE_SCHEMA_VERSION):
        raise StateError(
            f"{path} has state schema version {version!r} (written by dsx "
            f"{data.get('dsx_version', '?')}); this dsx {__version__} reads version "
            f"{STATE_SCHEMA_VERSION}. Re-save it with a matching dsx."
        )


def _lm_endpoints(
    program: Module, predictors: dict[str, dict[str, Any]], path: Path, *, keep: bool
) -> None:
    """Warn about the LM endpoints, keys and headers a state leaves out; with ``keep``,
    put each saved LM's endpoint (never its key or headers) into ``predictors``."""
    left_out: list[str] = []
    for name, predictor in program.named_predictors():
        saved = predictors.get(name, {}).get("lm")
        lm = predictor.lm
        if not isinstance(saved, dict) or lm is None:
            continue  # no LM, or one the program declares (not state)
        base = getattr(lm, "api_base", None)
        if base and keep:
            saved["api_base"] = base
        left = [
            key
            for key, value in (
                ("api_base", None if keep else base),
                ("api_key", getattr(lm, "api_key", None)),
                ("headers", getattr(lm, "headers", None)),
            )
            if value
        ]
        if left:
            left_out.append(f"{name} ({', '.join(left)})")
    if left_out:
        import warnings

        hint = "" if keep else "; allow_unsafe_lm_state=True saves the endpoint (never a key)"
        warnings.warn(
            f"{path}: saved without the LM endpoint, key or headers of "
            f"{'; '.join(left_out)}: set them in code or the environment where the program "
            f"is loaded{hint}",
            UserWarning,
            stacklevel=3,
        )


def _dspy_saved_state(path: Path) -> dict[str, Any] | None:
    """The decoded file when DSPy saved it (its ``metadata`` names a dspy version), else None."""
    from dsx._textfile import TextFileError, read_text

    try:
        data = json.loads(read_text(path, what="state file"))
    except (TextFileError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or "state" in data:
        return None
    meta = data.get("metadata")
    versions = meta.get("dependency_versions") if isinstance(meta, dict) else None
    return data if isinstance(versions, dict) and "dspy" in versions else None


def load(path: str | os.PathLike[str], *, allow_pickle: bool = False) -> Module:
    """Load a whole program saved with ``save(path, save_program=True, allow_pickle=True)``."""
    path = Path(path)
    if not allow_pickle:
        raise DsxError(
            f"Loading a whole program from {path} unpickles it, which can run arbitrary code. "
            "Pass allow_pickle=True only for files you trust, or save and load JSON state instead."
        )
    meta_path = path / "metadata.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StateError(f"{path} is not a saved dsx program (no metadata.json)") from None
    _check_schema(meta, meta_path)
    import pickle

    with open(path / "program.pkl", "rb") as fh:
        program = pickle.load(fh)
    if not isinstance(program, Module):
        raise StateError(f"{path} does not hold a dsx Module")
    return program
