"""``Predict``: one LM call shaped by a signature. ``ChainOfThought`` adds step-by-step reasoning."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from dsx.errors import (
    DsxError,
    InputTypeError,
    MissingInputError,
    StateError,
    UnknownInputError,
)
from dsx.runtime.assertions import scope_var
from dsx.runtime.example import Example
from dsx.runtime.kinds import LM_CONFIG, KindInfo
from dsx.runtime.lm_base import BaseLM, LMResponse
from dsx.runtime.module import Module
from dsx.runtime.prediction import Completions, Prediction
from dsx.runtime.settings import settings
from dsx.runtime.signature import InputField, OutputField, Signature, ensure_signature

if TYPE_CHECKING:
    from dsx.runtime.adapters.base import Adapter, Message

__all__ = ["ChainOfThought", "Predict", "default_adapter"]

_logger = logging.getLogger("dsx.predict")
#: The description of ChainOfThought's ``reasoning`` output.
REASONING_DESC = "your step-by-step thinking before the answer"
_CALL_OPTIONS = frozenset({"signature", "demos", "config", "lm"})
_default_adapter: Adapter | None = None


def default_adapter() -> Adapter:
    """The adapter used when none is configured: a :class:`~dsx.ChatAdapter` with JSON fallback."""
    global _default_adapter
    if _default_adapter is None:
        from dsx.runtime.adapters.chat import ChatAdapter

        _default_adapter = ChatAdapter()
    return _default_adapter


class Predict(Module):
    _backtracks = False  # a predictor runs no checks itself

    """Call an LM with a signature's inputs and parse its outputs.

    Args:
        signature: a signature class or string (``"question -> answer"``).
        lm: an LM this predictor always uses (otherwise ``dsx.settings.lm``).
        callbacks: callbacks for this predictor's calls only (see ``dsx.BaseCallback``).
        **config: default LM parameters for this predictor (``temperature``, ``n``, ...).

    Call with keyword inputs: ``predict(question="...")``. Per-call ``config={...}``,
    ``demos=[...]``, ``lm=`` and ``signature=`` override the predictor's own.
    """

    #: How a `.dsx` declaration builds it (:mod:`dsx.runtime.kinds`).
    dsx_kind: ClassVar[KindInfo] = KindInfo(
        "Predict", True, LM_CONFIG, doc="One LM call shaped by a signature."
    )

    def __init__(
        self,
        signature: Any,
        *,
        lm: BaseLM | None = None,
        callbacks: Sequence[Any] | None = None,
        **config: Any,
    ) -> None:
        if callbacks:
            self.callbacks = callbacks
        self.signature: type[Signature] = ensure_signature(signature)
        self.config: dict[str, Any] = config
        self.lm: BaseLM | None = lm
        self.demos: list[Any] = []
        self._original_signature = self.signature

    def reset(self) -> None:
        self.lm = None
        self.demos = []
        self.signature = self._original_signature

    # -- calling --------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Prediction:
        if args:
            raise TypeError(_positional_error(self.signature, args))
        return super().__call__(**kwargs)

    async def acall(self, *args: Any, **kwargs: Any) -> Prediction:
        if args:
            raise TypeError(_positional_error(self.signature, args))
        return await super().acall(**kwargs)

    def forward(self, **kwargs: Any) -> Prediction:
        lm, config, signature, demos, inputs = self._prepare(kwargs)
        adapter = settings.adapter or default_adapter()
        completions, response = adapter(lm, config, signature, demos, inputs)
        return self._finish(signature, inputs, completions, response)

    async def aforward(self, **kwargs: Any) -> Prediction:
        lm, config, signature, demos, inputs = self._prepare(kwargs)
        adapter = settings.adapter or default_adapter()
        completions, response = await adapter.acall(lm, config, signature, demos, inputs)
        return self._finish(signature, inputs, completions, response)

    def render(self, **kwargs: Any) -> list[Message]:
        """The exact messages this call would send, without calling the LM."""
        _, _, signature, demos, inputs = self._prepare(kwargs, need_lm=False)
        adapter = settings.adapter or default_adapter()
        return adapter.format(signature, demos, inputs)

    format_messages = render

    def _prepare(
        self, kwargs: dict[str, Any], need_lm: bool = True
    ) -> tuple[BaseLM, dict[str, Any], type[Signature], list[Any], dict[str, Any]]:
        signature = self.signature
        demos = self.demos
        config = self.config
        lm = self.lm
        if not _CALL_OPTIONS.isdisjoint(kwargs):
            if "signature" in kwargs:
                signature = ensure_signature(kwargs.pop("signature"))
            if "demos" in kwargs:
                demos = list(kwargs.pop("demos"))
            if "config" in kwargs:
                config = {**config, **kwargs.pop("config")}
            if "lm" in kwargs:
                lm = kwargs.pop("lm") or lm
        if lm is None:
            lm = settings.lm
            if lm is None and need_lm:
                raise DsxError(
                    "No LM is configured. Call dsx.configure(lm=dsx.LM('openai/gpt-4o-mini')), "
                    "use `with dsx.context(lm=...)`, or give the predictor its own (lm=...)."
                )
        if kwargs.keys() != signature._input_set:
            kwargs = _check_inputs(signature, kwargs)
        checks = signature._adapter_cache.get("_input_checks")
        if checks is None:
            checks = signature._adapter_cache["_input_checks"] = _input_checks(signature)
        if checks:
            kwargs = _check_types(signature, kwargs, checks)
        loose = signature._adapter_cache.get("_loose_checks")
        if loose is None:
            loose = signature._adapter_cache["_loose_checks"] = _loose_checks(signature)
        if loose and settings.get("warn_on_type_mismatch"):
            _warn_on_mismatch(signature, kwargs, loose)
        scope = scope_var.get()
        if scope is not None and scope.feedback:
            retry = scope.feedback.get(id(self))
            if retry is not None:
                signature, kwargs = _with_feedback(signature, kwargs, *retry)
        override = settings.get("config_override")
        if override:
            config = {**config, **override}
        hint = settings.get("hint")
        if hint:
            signature, kwargs = _with_hint(signature, kwargs, hint)
        return lm, config, signature, demos, kwargs

    def _finish(
        self,
        signature: type[Signature],
        inputs: dict[str, Any],
        completions: list[dict[str, Any]],
        response: LMResponse,
    ) -> Prediction:
        pred = Prediction(completions[0])
        if len(completions) > 1:
            pred._completions = Completions(completions, signature)
        trace = settings.trace
        if trace is not None:
            trace.append((self, inputs, pred))
        scope = scope_var.get()
        if scope is not None:
            scope.record(self, pred)
        return pred

    # -- state ----------------------------------------------------------------------------
    def dump_state(self) -> dict[str, Any]:
        return {
            "signature": self.signature.dump_state(),
            "demos": [_demo_state(d) for d in self.demos],
            # An LM the program declares (`lm fast = ...`) is the program's, not state.
            "lm": self.lm.dump_state()
            if self.lm is not None and not hasattr(self.lm, "_dsx_declared")
            else None,
        }

    def load_state(
        self, state: Mapping[str, Any], *, name: str = "self", allow_endpoints: bool = False
    ) -> Predict:
        """Load this predictor's state (see :meth:`Module.load_state`); all or nothing."""
        self._prepare_state(state, name=name, allow_endpoints=allow_endpoints)()
        return self

    def _prepare_state(
        self, state: Any, *, name: str, allow_endpoints: bool = False
    ) -> Callable[[], None]:
        """Check ``state`` and build what it sets, changing nothing; returns the step that
        applies it (which cannot fail), so a program loads all its predictors or none."""
        from dsx.runtime.state import check_predictor_state

        checked = check_predictor_state(state, name=name, allow_endpoints=allow_endpoints)
        saved_sig = checked["signature"] or {}
        saved = [f["name"] for f in saved_sig.get("fields", [])]
        have = list(self.signature.fields)
        if saved and saved != have:
            raise StateError(
                f"Predictor {name!r}: the saved state has fields {saved} but the program's "
                f"signature has {have}. The program changed since the state was saved."
            )
        signature = self.signature.load_state(saved_sig) if saved_sig else self.signature
        inputs = list(signature.input_fields)
        demos = [Example(d).with_inputs(*[k for k in inputs if k in d]) for d in checked["demos"]]
        lm = self.lm
        # An LM the program declares (`lm fast = ...` in .dsx) is the program's: saved
        # settings (checked above all the same) do not change it.
        if checked["lm"] and not hasattr(self.lm, "_dsx_declared"):
            lm = _lm_from_state(checked["lm"], self.lm, name)

        def apply() -> None:
            self.signature = signature
            self.demos = demos
            self.lm = lm

        return apply

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.signature.signature})"


def _with_feedback(
    signature: type[Signature], inputs: dict[str, Any], message: str, previous: dict[str, Any]
) -> tuple[type[Signature], dict[str, Any]]:
    """The signature and inputs for a retry after a failed Assert/Suggest."""
    cache = signature._adapter_cache
    extended = cache.get("_feedback_signature")
    if extended is None:
        extended = signature
        for name, field in signature.output_fields.items():
            extended = extended.append(
                f"previous_{name}",
                InputField(desc=f"your previous `{name}`, which was not accepted"),
                field.annotation,
            )
        extended = extended.append(
            "feedback", InputField(desc="why the previous answer was not accepted; fix that"), str
        )
        cache["_feedback_signature"] = extended
    new_inputs = dict(inputs)
    for name in signature.output_fields:
        new_inputs[f"previous_{name}"] = previous.get(name)
    new_inputs["feedback"] = message
    return extended, new_inputs


def _with_hint(
    signature: type[Signature], inputs: dict[str, Any], hint: str
) -> tuple[type[Signature], dict[str, Any]]:
    """Refine's feedback from a previous attempt, as an extra input."""
    if "hint" in signature.input_fields:
        return signature, inputs
    cache = signature._adapter_cache
    extended = cache.get("_hint_signature")
    if extended is None:
        extended = cache["_hint_signature"] = signature.append(
            "hint", InputField(desc="feedback on a previous attempt; use it to do better"), str
        )
    return extended, {**inputs, "hint": hint}


def _demo_state(demo: Any) -> dict[str, Any]:
    from dsx.runtime.adapters._values import jsonable

    items = demo.items() if isinstance(demo, Example) else dict(demo).items()
    return {k: jsonable(v) for k, v in items}


def _lm_from_state(state: Mapping[str, Any], current: BaseLM | None, name: str) -> BaseLM:
    """The LM for checked settings (see ``dsx.runtime.state.check_lm_state``)."""
    settings_ = dict(state)
    try:
        if current is not None:
            return current.copy(**settings_)
        from dsx.runtime.lm import LM  # the litellm client

        return LM(**settings_)
    except ImportError:  # pragma: no cover - the client ships with dsx
        raise StateError(f"Predictor {name!r}: saved LM settings need dsx.LM") from None
    except (DsxError, ValueError, TypeError) as exc:
        raise StateError(f"Predictor {name!r}: {name}.lm is not usable: {exc}") from None


def _check_inputs(signature: type[Signature], kwargs: dict[str, Any]) -> dict[str, Any]:
    given = kwargs.keys()
    unknown = given - signature._input_set
    if unknown:
        import difflib

        name = sorted(unknown)[0]
        close = difflib.get_close_matches(name, list(signature.input_fields), n=1)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise UnknownInputError(
            f"{signature.__name__} has no input `{name}`.{hint} Its inputs are: "
            f"{', '.join(signature.input_fields) or '(none)'}."
        )
    missing = [
        n for n in signature.input_fields if n not in given and n in signature._required_inputs
    ]
    if missing:
        raise MissingInputError(
            f"{signature.__name__} is missing the input{'s' if len(missing) > 1 else ''} "
            f"{', '.join(f'`{m}`' for m in missing)}; call it with "
            f"{', '.join(f'{m}=...' for m in missing)}."
        )
    filled = dict(kwargs)
    for fname, field in signature.input_fields.items():
        if fname not in filled:
            filled[fname] = field.default if field.has_default else None
    return filled


#: Input types taken as they are: text (DSPy formats any value), anything, and media.
_UNCHECKED_TYPES: tuple[Any, ...] = (str, Any, object)


def _input_checks(signature: type[Signature]) -> tuple[tuple[str, Any, Any], ...]:
    """(name, validator, field) for each input whose type can be checked: not text, not media."""
    import pydantic

    from dsx.runtime.types import History, Image

    checks = []
    for name, field in signature.input_fields.items():
        ann = field.annotation
        if (ann in _UNCHECKED_TYPES and not field.constraints) or ann in (Image, History):
            continue
        try:
            adapter = pydantic.TypeAdapter(field.checked_type)
        except Exception:  # a type pydantic cannot check: taken as it is, like before
            continue
        checks.append((name, adapter, field))
    return tuple(checks)


def _check_types(
    signature: type[Signature], kwargs: dict[str, Any], checks: tuple[tuple[str, Any, Any], ...]
) -> dict[str, Any]:
    """Validate (and coerce, pydantic's lax mode: ``"3"`` → ``3``) the typed inputs before
    any LM call; a value that does not fit is an :class:`~dsx.errors.InputTypeError`."""
    import pydantic

    out = kwargs
    for name, adapter, field in checks:
        value = kwargs.get(name)
        if value is None and field.optional:
            continue
        try:
            checked = adapter.validate_python(value)
        except pydantic.ValidationError as exc:
            errors = exc.errors()
            problem = errors[0].get("msg", "") if errors else str(exc)
            where = errors[0].get("loc", ()) if errors else ()
            at = "".join(f"[{p!r}]" for p in where)
            shown = repr(value)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            limits = f" ({field.constraints_text})" if field.constraints else ""
            raise InputTypeError(
                f"{signature.__name__}: input `{name}` should be {field.type_name}{limits}, got "
                f"{type(value).__name__} {shown}{f' ({at}: {problem})' if at else f' ({problem})'}"
            ) from None
        if checked is not value:
            if out is kwargs:
                out = dict(kwargs)
            out[name] = checked
    return out


def _loose_checks(signature: type[Signature]) -> tuple[tuple[str, Any], ...]:
    """(name, annotation) of the inputs taken as they are but declared as text or media:
    a value of another kind is sent anyway, with a warning (DSPy's
    ``warn_on_type_mismatch``)."""
    from dsx.runtime.types import History, Image

    return tuple(
        (name, field.annotation)
        for name, field in signature.input_fields.items()
        if field.annotation in (str, Image, History)
    )


def _fits_loosely(value: Any, annotation: Any) -> bool:
    if value is None:
        return True
    if annotation is str:
        # A list of strings is text too: it is shown as a numbered list.
        return isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        )
    if isinstance(value, annotation):
        return True
    return isinstance(value, list) and bool(value) and all(isinstance(v, annotation) for v in value)


def _warn_on_mismatch(
    signature: type[Signature], kwargs: dict[str, Any], loose: tuple[tuple[str, Any], ...]
) -> None:
    """Log once per signature and field when an input's value is not of its declared kind."""
    for name, annotation in loose:
        value = kwargs.get(name)
        if _fits_loosely(value, annotation):
            continue
        warned = signature._adapter_cache.setdefault("_warned_inputs", set())
        if name in warned:
            continue
        warned.add(name)
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        field = signature.input_fields[name]
        _logger.warning(
            "%s: input `%s` is declared as %s but got %s %s; it is sent as %s. Pass a "
            "value of the declared type, or change the field's type. (Warned once per "
            "field; dsx.configure(warn_on_type_mismatch=False) turns this off.)",
            signature.__name__,
            name,
            field.type_name,
            type(value).__name__,
            shown,
            "text" if annotation is str else "its text",
        )


def _positional_error(signature: type[Signature], args: tuple[Any, ...]) -> str:
    names = ", ".join(f"{n}=..." for n in signature.input_fields)
    return (
        f"Predictors take keyword inputs only (got {len(args)} positional argument"
        f"{'s' if len(args) > 1 else ''}); call it as predictor({names})."
    )


class ChainOfThought(Module):
    """Like :class:`Predict`, with a ``reasoning`` output the LM writes before the answer.

    Args:
        signature: the task's signature.
        rationale_field: replaces the default ``reasoning`` field (an ``OutputField``).
        rationale_field_type: its type (default ``str``).
        **config: LM parameters, as for :class:`Predict`.
    """

    dsx_kind: ClassVar[KindInfo] = KindInfo(
        "ChainOfThought",
        True,
        LM_CONFIG,
        ("reasoning",),
        doc="Like Predict, with step-by-step `reasoning` written before the outputs.",
    )

    def __init__(
        self,
        signature: Any,
        *,
        rationale_field: Any = None,
        rationale_field_type: Any = str,
        **config: Any,
    ) -> None:
        sig = ensure_signature(signature)
        field = rationale_field or OutputField(desc=REASONING_DESC)
        self.predict = Predict(sig.prepend("reasoning", field, rationale_field_type), **config)

    def forward(self, **kwargs: Any) -> Prediction:
        return self.predict(**kwargs)

    async def aforward(self, **kwargs: Any) -> Prediction:
        return await self.predict.acall(**kwargs)

    @property
    def signature(self) -> type[Signature]:
        return self.predict.signature

    def __repr__(self) -> str:
        return f"ChainOfThought({self.predict.signature.signature})"
