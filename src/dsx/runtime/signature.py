"""Signatures: the typed input/output contract of an LM call.

Two forms::

    class QA(dsx.Signature):
        \"\"\"Answer with a short factoid.\"\"\"        # docstring = instructions
        question: str = dsx.InputField()
        answer: str = dsx.OutputField(desc="1-5 words")

    QA2 = dsx.Signature("context: list[str], question -> answer: float", "Answer.")

Signatures are classes and immutable: mutators return new signature classes.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from dsx.errors import SignatureError
from dsx.runtime._typeparse import (
    BASE_TYPE_NAMESPACE,
    TypeParseError,
    caller_namespace,
    parse_type,
    type_name,
)

__all__ = [
    "CONSTRAINT_NAMES",
    "Field",
    "InputField",
    "OutputField",
    "Signature",
    "SignatureMeta",
    "ensure_signature",
    "make_signature",
    "signature_from_fields",
]

FieldKind = Literal["input", "output"]
_MISSING: Any = object()
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


#: pydantic's constraints a field may carry (``OutputField(ge=0, max_length=20)``): checked
#: on inputs and parsed outputs, and shown to the LM.
CONSTRAINT_NAMES = frozenset(
    {
        "gt",
        "ge",
        "lt",
        "le",
        "multiple_of",
        "allow_inf_nan",
        "min_length",
        "max_length",
        "pattern",
        "max_digits",
        "decimal_places",
    }
)


class _FieldSpec:
    """What ``InputField()`` / ``OutputField()`` return inside a class body."""

    __slots__ = ("constraints", "default", "desc", "format", "kind", "prefix")

    def __init__(
        self,
        kind: FieldKind,
        desc: str | None,
        prefix: str | None,
        default: Any,
        constraints: dict[str, Any] | None = None,
        format: Callable[[Any], str] | None = None,
    ):
        self.kind = kind
        self.desc = desc
        self.prefix = prefix
        self.default = default
        self.constraints = constraints or {}
        self.format = format

    def __repr__(self) -> str:
        return f"{'Input' if self.kind == 'input' else 'Output'}Field(desc={self.desc!r})"


def _spec(kind: FieldKind, desc: Any, prefix: Any, default: Any, extra: dict[str, Any]) -> Any:
    label = "InputField" if kind == "input" else "OutputField"
    description = extra.pop("description", None)
    if desc is None and description is not None:
        desc = description  # pydantic's spelling
    fmt = extra.pop("format", None)
    if fmt is not None and not callable(fmt):
        raise SignatureError(
            f"dsx.{label}(format=...) takes a function that turns the value into prompt "
            f"text, got {type(fmt).__name__}"
        )
    if "parser" in extra:
        import warnings

        extra.pop("parser")
        warnings.warn(
            f"dsx.{label}(parser=...) has no effect (as in DSPy, where it is deprecated): "
            "the field's type decides how the reply is parsed",
            DeprecationWarning,
            stacklevel=3,
        )
    unknown = sorted(set(extra) - CONSTRAINT_NAMES)
    if unknown:
        raise SignatureError(
            f"dsx.{label}() got an unexpected argument `{unknown[0]}`; it takes desc=, "
            f"prefix=, format=, default= (inputs) and the constraints "
            f"{', '.join(sorted(CONSTRAINT_NAMES))}"
        )
    return _FieldSpec(kind, desc, prefix, default, dict(extra), fmt)


def InputField(
    *, desc: str | None = None, prefix: str | None = None, default: Any = _MISSING, **kwargs: Any
) -> Any:
    """Declare an input field of a signature (``question: str = dsx.InputField()``).

    Args:
        desc: what the field holds, shown to the LM (``description=`` works too).
        prefix: the field's label (DSPy's; dsx's prompts use the field name).
        default: the value when the caller omits the input.
        format: a function turning the value into the text the prompt shows.
        **kwargs: pydantic constraints (``ge=0``, ``max_length=200``, ``pattern=...``),
            checked before the LM is called.
    """
    return _spec("input", desc, prefix, default, kwargs)


def OutputField(*, desc: str | None = None, prefix: str | None = None, **kwargs: Any) -> Any:
    """Declare an output field of a signature (``answer: str = dsx.OutputField()``).

    Args:
        desc: what the field holds, shown to the LM (``description=`` works too).
        prefix: the field's label (DSPy's; dsx's prompts use the field name).
        **kwargs: pydantic constraints (``ge=1``, ``le=5``, ``max_length=20``,
            ``pattern=...``): shown to the LM and enforced when the reply is parsed (a reply
            that breaks one is a parse error, which the adapter can retry).
    """
    return _spec("output", desc, prefix, _MISSING, kwargs)


class Field:
    """One field of a signature. Immutable; adapters cache derived data on it."""

    __slots__ = (
        "_cache",
        "annotation",
        "constraints",
        "default",
        "desc",
        "format",
        "kind",
        "name",
        "prefix",
    )

    def __init__(
        self,
        name: str,
        kind: FieldKind,
        annotation: Any = str,
        *,
        desc: str | None = None,
        prefix: str | None = None,
        default: Any = _MISSING,
        constraints: Mapping[str, Any] | None = None,
        format: Callable[[Any], str] | None = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.annotation = annotation
        self.desc = desc or ""
        self.prefix = prefix or _default_prefix(name)
        self.default = default
        self.constraints: dict[str, Any] = dict(constraints or {})
        self.format = format
        self._cache: dict[str, Any] = {}

    @property
    def type_name(self) -> str:
        return type_name(self.annotation)

    @property
    def optional(self) -> bool:
        """Whether the field may be omitted (it has a default or admits ``None``)."""
        return self.default is not _MISSING or _admits_none(self.annotation)

    @property
    def has_default(self) -> bool:
        return self.default is not _MISSING

    @property
    def checked_type(self) -> Any:
        """The annotation with the field's constraints attached (what values must fit)."""
        if not self.constraints:
            return self.annotation
        cached = self._cache.get("checked_type")
        if cached is None:
            import pydantic

            cached = typing.Annotated[self.annotation, pydantic.Field(**self.constraints)]
            self._cache["checked_type"] = cached
        return cached

    @property
    def constraints_text(self) -> str:
        """The constraints in words (``"at least 1, at most 5"``); ``""`` when none."""
        return describe_constraints(self.constraints)

    # -- DSPy's view of a field (a pydantic FieldInfo) ----------------------------------
    @property
    def description(self) -> str | None:
        return self.desc or None

    @property
    def json_schema_extra(self) -> dict[str, Any]:
        """What DSPy keeps in a field's ``json_schema_extra``: its kind, desc and prefix."""
        extra: dict[str, Any] = {
            "__dspy_field_type": self.kind,
            "desc": self.desc,
            "prefix": self.prefix,
        }
        if self.constraints:
            extra["constraints"] = self.constraints_text
        if self.format is not None:
            extra["format"] = self.format
        return extra

    @property
    def field_info(self) -> Any:
        """The field as a :class:`pydantic.fields.FieldInfo` (annotation, default,
        description, constraints, ``json_schema_extra``), as DSPy's fields are."""
        info = self._cache.get("field_info")
        if info is None:
            import pydantic

            kwargs: dict[str, Any] = dict(self.constraints)
            if self.has_default:
                kwargs["default"] = self.default
            info = pydantic.Field(
                description=self.desc or None,
                json_schema_extra={
                    k: v for k, v in self.json_schema_extra.items() if k != "format"
                },
                **kwargs,
            )
            info.annotation = self.annotation
            self._cache["field_info"] = info
        return info

    def replace(self, **changes: Any) -> Field:
        values = {
            "name": self.name,
            "kind": self.kind,
            "annotation": self.annotation,
            "desc": self.desc,
            "prefix": self.prefix,
            "default": self.default,
            "constraints": self.constraints,
            "format": self.format,
        }
        values.update(changes)
        return Field(values.pop("name"), values.pop("kind"), values.pop("annotation"), **values)

    def same_as(self, other: Field) -> bool:
        return (
            self.name == other.name
            and self.kind == other.kind
            and self.annotation == other.annotation
            and self.desc == other.desc
            and self.prefix == other.prefix
            and self.constraints == getattr(other, "constraints", {})
        )

    def __repr__(self) -> str:
        desc = f", desc={self.desc!r}" if self.desc else ""
        return f"Field({self.name}: {self.type_name}, {self.kind}{desc})"


_CONSTRAINT_WORDS = {
    "gt": "greater than {}",
    "ge": "at least {}",
    "lt": "less than {}",
    "le": "at most {}",
    "multiple_of": "a multiple of {}",
    "min_length": "at least {} long",
    "max_length": "at most {} long",
    "pattern": "matching the regular expression {}",
    "allow_inf_nan": "{}",
    "max_digits": "at most {} digits",
    "decimal_places": "at most {} decimal places",
}


def describe_constraints(constraints: Mapping[str, Any]) -> str:
    """Constraints in words for prompts and error messages."""
    parts = []
    for key, value in constraints.items():
        if key == "allow_inf_nan":
            parts.append("inf and nan allowed" if value else "finite")
            continue
        shown = f"`{value}`" if key == "pattern" else repr(value)
        parts.append(_CONSTRAINT_WORDS.get(key, key + " {}").format(shown))
    return ", ".join(parts)


def _default_prefix(name: str) -> str:
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).replace("_", " ").split()
    return " ".join(words).capitalize() if words else name


def _admits_none(tp: Any) -> bool:
    if tp is type(None) or tp is typing.Any:
        return True
    origin = typing.get_origin(tp)
    if origin is typing.Union or (
        origin is not None and getattr(origin, "__name__", "") == "UnionType"
    ):
        return type(None) in typing.get_args(tp)
    return False


class SignatureMeta(type):
    """Builds the field tables of a signature class and makes ``Signature("a -> b")`` work."""

    input_fields: Mapping[str, Field]
    output_fields: Mapping[str, Field]
    fields: Mapping[str, Field]
    instructions: str

    def __new__(mcs, name: str, bases: tuple[type, ...], ns: dict[str, Any], **kw: Any):
        fields: dict[str, Field] = {}
        for base in reversed(bases):
            fields.update(getattr(base, "fields", {}) or {})
        raw_annotations = ns.get("__annotations__", {})
        specs = {k: v for k, v in ns.items() if isinstance(v, _FieldSpec)}
        for key in specs:
            ns.pop(key)
        cls = super().__new__(mcs, name, bases, ns, **kw)
        if raw_annotations or specs:
            hints = _resolve_hints(cls, name)
            # Declaration order (the class body's), whether or not a field is annotated.
            for fname in list(specs) + [a for a in raw_annotations if a not in specs]:
                if fname.startswith("_") or typing.get_origin(hints.get(fname)) is ClassVar:
                    continue
                spec = specs.get(fname)
                if spec is None:
                    raise SignatureError(
                        f"Field `{fname}` of signature {name} has a type but is neither an "
                        f"input nor an output: write `{fname}: ... = dsx.InputField()` or "
                        "`dsx.OutputField()`."
                    )
                fields[fname] = Field(
                    fname,
                    spec.kind,
                    hints.get(fname, str),
                    desc=spec.desc,
                    prefix=spec.prefix,
                    default=spec.default,
                    constraints=spec.constraints,
                    format=spec.format,
                )
        doc = ns.get("__doc__")
        # cleandoc: a docstring's continuation lines lose their indentation.
        instructions = inspect.cleandoc(typing.cast(str, doc)) if doc else None
        _install(cls, fields, instructions)
        return cls

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is Signature:
            if not args:
                raise SignatureError(
                    'dsx.Signature needs a signature, e.g. dsx.Signature("question -> answer")'
                )
            return make_signature(*args, **kwargs)
        raise TypeError(
            f"{cls.__name__} is a signature class; pass it to a predictor "
            f"(dsx.Predict({cls.__name__})) instead of instantiating it"
        )

    def __repr__(cls) -> str:
        if cls is Signature:
            return "<class 'dsx.Signature'>"
        return f"{cls.__name__}({cls.signature}\n    instructions={cls.instructions!r})"

    # -- read-only views ----------------------------------------------------------------
    @property
    def signature(cls) -> str:
        """The ``"a, b -> c"`` shorthand of this signature (names only)."""
        return ", ".join(cls.input_fields) + " -> " + ", ".join(cls.output_fields)

    @property
    def model_fields(cls) -> dict[str, Any]:
        """Every field as a :class:`pydantic.fields.FieldInfo`, inputs then outputs (DSPy's
        signatures are pydantic models; code that reads ``model_fields`` keeps working)."""
        return {name: f.field_info for name, f in cls.fields.items()}

    @property
    def input_names(cls) -> tuple[str, ...]:
        return tuple(cls.input_fields)

    @property
    def output_names(cls) -> tuple[str, ...]:
        return tuple(cls.output_fields)


def _resolve_hints(cls: type, name: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except NameError as exc:
        raise SignatureError(
            f"Signature {name} uses a type that cannot be resolved: {exc}. Import the type "
            "in the module that defines the signature."
        ) from None


def _install(cls: Any, fields: dict[str, Field], instructions: str | None) -> None:
    ordered = {k: f for k, f in fields.items() if f.kind == "input"}
    ordered.update({k: f for k, f in fields.items() if f.kind == "output"})
    cls.input_fields = MappingProxyType({k: f for k, f in ordered.items() if f.kind == "input"})
    cls.output_fields = MappingProxyType({k: f for k, f in ordered.items() if f.kind == "output"})
    cls.fields = MappingProxyType(ordered)
    cls.instructions = instructions if instructions is not None else _default_instructions(cls)
    # Precomputed for the per-call path.
    cls._required_inputs = frozenset(n for n, f in cls.input_fields.items() if not f.optional)
    cls._input_set = frozenset(cls.input_fields)
    cls._adapter_cache = {}


def _default_instructions(cls: Any) -> str:
    if not cls.fields:
        return ""
    ins = ", ".join(f"`{n}`" for n in cls.input_fields) or "nothing"
    outs = ", ".join(f"`{n}`" for n in cls.output_fields)
    return f"From {ins}, produce {outs}."


class Signature(metaclass=SignatureMeta):
    """Base class of all signatures. See the module docstring for both forms."""

    input_fields: ClassVar[Mapping[str, Field]]
    output_fields: ClassVar[Mapping[str, Field]]
    fields: ClassVar[Mapping[str, Field]]
    instructions: ClassVar[str]
    _required_inputs: ClassVar[frozenset[str]]
    _input_set: ClassVar[frozenset[str]]
    _adapter_cache: ClassVar[dict[Any, Any]]

    # -- mutators (each returns a new signature class) ------------------------------------
    @classmethod
    def with_instructions(cls, instructions: str) -> type[Signature]:
        return _derive(cls, cls.fields.values(), instructions)

    @classmethod
    def append_instructions(cls, instructions: str) -> type[Signature]:
        """A copy with ``instructions`` added after the current ones (a blank line between)."""
        current = cls.instructions.rstrip()
        return _derive(
            cls, cls.fields.values(), f"{current}\n\n{instructions}" if current else instructions
        )

    @classmethod
    def append(cls, name: str, field: Any = None, type_: Any = None) -> type[Signature]:
        new = _field_from(name, field, type_)
        group = [f for f in cls.fields.values() if f.kind == new.kind]
        return cls.insert(len(group), name, field, type_)

    @classmethod
    def prepend(cls, name: str, field: Any = None, type_: Any = None) -> type[Signature]:
        return cls.insert(0, name, field, type_)

    @classmethod
    def insert(cls, index: int, name: str, field: Any = None, type_: Any = None) -> type[Signature]:
        """Insert a field at ``index`` among the fields of its kind (inputs or outputs)."""
        new = _field_from(name, field, type_)
        if name in cls.fields:
            raise SignatureError(f"Signature {cls.__name__} already has a field `{name}`")
        inputs = [f for f in cls.fields.values() if f.kind == "input"]
        outputs = [f for f in cls.fields.values() if f.kind == "output"]
        group = inputs if new.kind == "input" else outputs
        if index < 0:
            index += len(group) + 1
        if not 0 <= index <= len(group):
            raise SignatureError(
                f"Index {index} is out of range for the {len(group)} {new.kind} fields of "
                f"{cls.__name__}"
            )
        group.insert(index, new)
        return _derive(cls, inputs + outputs, cls.instructions)

    @classmethod
    def delete(cls, name: str) -> type[Signature]:
        if name not in cls.fields:
            raise SignatureError(f"Signature {cls.__name__} has no field `{name}` to delete")
        return _derive(cls, [f for f in cls.fields.values() if f.name != name], cls.instructions)

    @classmethod
    def with_updated_fields(cls, name: str, type_: Any = None, **changes: Any) -> type[Signature]:
        """Change a field's ``desc``, ``prefix``, ``format``, constraints or type (``type_``)."""
        if name not in cls.fields:
            raise SignatureError(f"Signature {cls.__name__} has no field `{name}`")
        unknown = set(changes) - {"desc", "prefix", "format"} - CONSTRAINT_NAMES
        if unknown:
            raise SignatureError(
                f"with_updated_fields accepts desc=, prefix=, format=, type_= and constraints "
                f"({', '.join(sorted(CONSTRAINT_NAMES))}); got {sorted(unknown)}"
            )
        limits = {k: changes.pop(k) for k in list(changes) if k in CONSTRAINT_NAMES}
        if limits:
            changes["constraints"] = {**cls.fields[name].constraints, **limits}
        if type_ is not None:
            changes["annotation"] = type_
        fields = [f.replace(**changes) if f.name == name else f for f in cls.fields.values()]
        return _derive(cls, fields, cls.instructions)

    # -- comparison and state -------------------------------------------------------------
    @classmethod
    def equals(cls, other: Any) -> bool:
        if not isinstance(other, SignatureMeta):
            return False
        return (
            cls.instructions == other.instructions
            and list(cls.fields) == list(other.fields)
            and all(f.same_as(other.fields[n]) for n, f in cls.fields.items())
        )

    @classmethod
    def dump_state(cls) -> dict[str, Any]:
        return {
            "instructions": cls.instructions,
            "fields": [
                {
                    "name": f.name,
                    "kind": f.kind,
                    "type": f.type_name,
                    "desc": f.desc,
                    "prefix": f.prefix,
                }
                for f in cls.fields.values()
            ],
        }

    @classmethod
    def load_state(cls, state: Mapping[str, Any]) -> type[Signature]:
        """A copy of this signature with the instructions and field texts in ``state``."""
        by_name = {f["name"]: f for f in state.get("fields", [])}
        fields = []
        for f in cls.fields.values():
            saved = by_name.get(f.name)
            fields.append(
                f.replace(desc=saved.get("desc", f.desc), prefix=saved.get("prefix", f.prefix))
                if saved
                else f
            )
        return _derive(cls, fields, state.get("instructions", cls.instructions))


def _field_from(name: str, field: Any, type_: Any) -> Field:
    if not isinstance(name, str) or not _IDENT.match(name):
        raise SignatureError(f"`{name}` is not a valid field name (use a Python identifier)")
    if isinstance(field, Field):
        return field.replace(name=name, annotation=type_ or field.annotation)
    if not isinstance(field, _FieldSpec):
        raise SignatureError(
            f"Field `{name}` needs dsx.InputField(...) or dsx.OutputField(...), got {field!r}"
        )
    return Field(
        name,
        field.kind,
        type_ or str,
        desc=field.desc,
        prefix=field.prefix,
        default=field.default,
        constraints=field.constraints,
        format=field.format,
    )


def _derive(base: Any, fields: Iterable[Field], instructions: str) -> type[Signature]:
    root = base if base is not Signature else Signature
    cls = SignatureMeta.__new__(
        SignatureMeta, base.__name__, (root,), {"__doc__": None, "__module__": base.__module__}
    )
    _install(cls, {f.name: f for f in fields}, instructions)
    return typing.cast(type[Signature], cls)


# -- string form ---------------------------------------------------------------------------


def make_signature(
    spec: str | Mapping[str, Any] | type[Signature],
    instructions: str | None = None,
    *,
    name: str = "StringSignature",
    custom_types: Mapping[str, Any] | None = None,
) -> type[Signature]:
    """Build a signature from ``"in1, in2: T -> out: T"`` or a ``{name: field}`` mapping."""
    if isinstance(spec, SignatureMeta):
        return spec if instructions is None else spec.with_instructions(instructions)
    if isinstance(spec, Mapping):
        fields = [
            _field_from(n, f, getattr(f, "annotation", None))
            if isinstance(f, Field)
            else _field_from(n, *_unpack(f))
            for n, f in spec.items()
        ]
    elif isinstance(spec, str):
        namespace = {**BASE_TYPE_NAMESPACE, **_dsx_types(), **caller_namespace()}
        if custom_types:
            namespace.update(custom_types)
        fields = _parse_signature_string(spec, namespace)
    else:
        raise SignatureError(
            f"A signature must be a string like 'question -> answer' or a Signature class, "
            f"got {type(spec).__name__}"
        )
    cls = SignatureMeta.__new__(SignatureMeta, name, (Signature,), {"__doc__": None})
    _install(cls, {f.name: f for f in fields}, "")
    if instructions is None:
        instructions = _default_instructions(cls)
    cls.instructions = instructions
    return typing.cast(type[Signature], cls)


def _unpack(value: Any) -> tuple[Any, Any]:
    if isinstance(value, tuple) and len(value) == 2:
        return value[1], value[0]  # (type, field) -> (field, type)
    return value, None


_NAMED_TYPES: dict[str, Any] = {}


def _dsx_types() -> dict[str, Any]:
    """dsx's field types by name, bare (``Image``) and qualified (``dsx.Image``, and
    ``dspy.Image`` for signatures brought over from DSPy)."""
    if not _NAMED_TYPES:
        from types import SimpleNamespace

        from dsx.runtime.tool import Tool
        from dsx.runtime.tool_calls import ToolCallResults, ToolCalls
        from dsx.runtime.types import History, Image

        named = {
            "Image": Image,
            "History": History,
            "Tool": Tool,
            "ToolCalls": ToolCalls,
            "ToolCallResults": ToolCallResults,
        }
        qualified = SimpleNamespace(**named)
        _NAMED_TYPES.update(named, dsx=qualified, dspy=qualified)
    return _NAMED_TYPES


def _parse_signature_string(text: str, namespace: dict[str, Any]) -> list[Field]:
    def fail(why: str) -> SignatureError:
        return SignatureError(
            f"Invalid signature {text!r}: {why}. Expected the form "
            "'input1, input2: type -> output: type', e.g. 'question -> answer: float'."
        )

    if text.count("->") != 1:
        raise fail(
            "it must contain exactly one '->'"
            if "->" not in text
            else "it contains '->' more than once"
        )
    left, right = text.split("->")
    inputs = _split_fields(left, "input", text, fail, namespace)
    outputs = _split_fields(right, "output", text, fail, namespace)
    if not outputs:
        raise fail("there is no output field after '->'")
    seen: set[str] = set()
    for f in inputs + outputs:
        if f.name in seen:
            raise fail(f"field `{f.name}` appears twice")
        seen.add(f.name)
    return inputs + outputs


def _split_fields(
    part: str, kind: FieldKind, text: str, fail: Any, ns: dict[str, Any]
) -> list[Field]:
    items, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(part):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
            if depth < 0:
                raise fail(f"unbalanced '{ch}'")
        elif ch == "," and depth == 0:
            items.append(part[start:i])
            start = i + 1
    if depth or quote:
        raise fail("unbalanced brackets or quotes")
    items.append(part[start:])
    if all(not item.strip() for item in items):
        return []
    fields = []
    for item in items:
        item = item.strip()
        if not item:
            raise fail(f"an empty {kind} field (check for a stray comma)")
        name, sep, tp_text = item.partition(":")
        name = name.strip()
        if not _IDENT.match(name):
            raise fail(f"`{name}` is not a valid field name")
        annotation: Any = str
        if sep:
            if not tp_text.strip():
                raise fail(f"field `{name}` has ':' but no type")
            try:
                annotation = parse_type(tp_text, ns)
            except TypeParseError as exc:
                raise fail(str(exc)) from None
        fields.append(Field(name, kind, annotation))
    return fields


def ensure_signature(signature: Any, instructions: str | None = None) -> type[Signature]:
    """Accept a signature class or string and return a signature class."""
    if isinstance(signature, SignatureMeta) and signature is not Signature:
        sig = typing.cast(type[Signature], signature)
        return sig if instructions is None else sig.with_instructions(instructions)
    if isinstance(signature, str):
        return make_signature(signature, instructions)
    raise SignatureError(
        f"Expected a signature (a dsx.Signature subclass or a string like 'question -> answer'), "
        f"got {signature!r}"
    )


# -- pickling (whole-program save with allow_pickle=True) ---------------------------------


def _reduce_signature(cls: Any) -> Any:
    import sys

    module = sys.modules.get(cls.__module__)
    target: Any = module
    for part in cls.__qualname__.split("."):
        target = getattr(target, part, None)
    if target is cls:
        return cls.__qualname__  # importable: pickle by reference
    return _rebuild_signature, (cls.__name__, list(cls.fields.values()), cls.instructions)


def signature_from_fields(name: str, fields: list[Field], instructions: str) -> type[Signature]:
    """A signature class from :class:`Field` objects (used to build programs from the IR)."""
    return _rebuild_signature(name, fields, instructions)


def _rebuild_signature(name: str, fields: list[Field], instructions: str) -> type[Signature]:
    cls = SignatureMeta.__new__(SignatureMeta, name, (Signature,), {"__doc__": None})
    _install(cls, {f.name: f for f in fields}, instructions)
    return typing.cast(type[Signature], cls)


def _field_getstate(self: Field) -> dict[str, Any]:
    return {k: getattr(self, k) for k in Field.__slots__ if k != "_cache"}


def _field_setstate(self: Field, state: dict[str, Any]) -> None:
    for k, v in state.items():
        object.__setattr__(self, k, v)
    self._cache = {}


Field.__getstate__ = _field_getstate  # type: ignore[method-assign,assignment]
Field.__setstate__ = _field_setstate  # type: ignore[attr-defined]

import copyreg  # noqa: E402

copyreg.pickle(SignatureMeta, _reduce_signature)
