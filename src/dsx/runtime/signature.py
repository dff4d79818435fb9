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

import re
import typing
from collections.abc import Iterable, Mapping
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


class _FieldSpec:
    """What ``InputField()`` / ``OutputField()`` return inside a class body."""

    __slots__ = ("default", "desc", "kind", "prefix")

    def __init__(self, kind: FieldKind, desc: str | None, prefix: str | None, default: Any):
        self.kind = kind
        self.desc = desc
        self.prefix = prefix
        self.default = default

    def __repr__(self) -> str:
        return f"{'Input' if self.kind == 'input' else 'Output'}Field(desc={self.desc!r})"


def InputField(
    *, desc: str | None = None, prefix: str | None = None, default: Any = _MISSING
) -> Any:
    """Declare an input field of a signature (``question: str = dsx.InputField()``)."""
    return _FieldSpec("input", desc, prefix, default)


def OutputField(*, desc: str | None = None, prefix: str | None = None) -> Any:
    """Declare an output field of a signature (``answer: str = dsx.OutputField()``)."""
    return _FieldSpec("output", desc, prefix, _MISSING)


class Field:
    """One field of a signature. Immutable; adapters cache derived data on it."""

    __slots__ = ("_cache", "annotation", "default", "desc", "kind", "name", "prefix")

    def __init__(
        self,
        name: str,
        kind: FieldKind,
        annotation: Any = str,
        *,
        desc: str | None = None,
        prefix: str | None = None,
        default: Any = _MISSING,
    ) -> None:
        self.name = name
        self.kind = kind
        self.annotation = annotation
        self.desc = desc or ""
        self.prefix = prefix or _default_prefix(name)
        self.default = default
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

    def replace(self, **changes: Any) -> Field:
        values = {
            "name": self.name,
            "kind": self.kind,
            "annotation": self.annotation,
            "desc": self.desc,
            "prefix": self.prefix,
            "default": self.default,
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
        )

    def __repr__(self) -> str:
        desc = f", desc={self.desc!r}" if self.desc else ""
        return f"Field({self.name}: {self.type_name}, {self.kind}{desc})"


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
            for fname in list(raw_annotations) + [s for s in specs if s not in raw_annotations]:
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
                )
        doc = ns.get("__doc__")
        instructions = typing.cast(str, doc).strip() if doc else None
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
        """Change a field's ``desc``, ``prefix`` or type (``type_``)."""
        if name not in cls.fields:
            raise SignatureError(f"Signature {cls.__name__} has no field `{name}`")
        unknown = set(changes) - {"desc", "prefix"}
        if unknown:
            raise SignatureError(
                f"with_updated_fields accepts desc=, prefix=, type_=; got {sorted(unknown)}"
            )
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
        name, field.kind, type_ or str, desc=field.desc, prefix=field.prefix, default=field.default
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
