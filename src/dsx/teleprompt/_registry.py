"""What each optimizer can be told: its settings' names, kinds and defaults, read off its class.

The constructor of an optimizer *is* the declaration of its settings: this module reads
each parameter's name, default and annotation (and the one-line doc from the class
docstring's ``Args:``), so the ``.dsx`` checker, completion and ``dsx build`` can never
drift from the runtime. Parameters given as ``**options`` come from
:class:`~dsx.teleprompt.Teleprompter` (``seed``, budgets, ...) plus what the class declares in
``forwarded_settings`` (e.g. ``KNNFewShot`` passes bootstrap settings on).

A setting's *kinds* say which ``.dsx`` constants it takes: ``int``, ``float`` (an int is
fine), ``bool``, ``str``, ``model`` (a model string such as ``"openai/gpt-4o-mini"``,
turned into an LM by ``dsx build``), ``list``, ``dict``, ``any``; a setting that only takes a
Python object (a metric function, a program) has the kind ``python`` and cannot be set from
``.dsx``.
"""

from __future__ import annotations

import importlib
import inspect
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["REQUIRED", "OptimizerInfo", "SettingInfo", "describe_optimizer"]

Kind = Literal["int", "float", "bool", "str", "model", "list", "dict", "any", "python"]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: The default of a setting that has none.
REQUIRED: Any = _Required()

_WORDS: dict[Kind, str] = {
    "int": "an int",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "model": "a model string",
    "list": "a list",
    "dict": "a dict",
    "any": "any constant",
}
_SIMPLE: dict[Any, Kind] = {bool: "bool", int: "int", float: "float", str: "str"}


@dataclass(frozen=True)
class SettingInfo:
    """One setting of an optimizer.

    Attributes:
        name: the keyword.
        kinds: which ``.dsx`` constants it takes (see the module docs).
        default: its default (``REQUIRED`` when it has none).
        optional: whether ``none`` is accepted.
        choices: the allowed strings, when the setting is a ``Literal``.
        doc: one line saying what it does.
    """

    name: str
    kinds: tuple[Kind, ...]
    default: Any = REQUIRED
    optional: bool = False
    choices: tuple[Any, ...] = ()
    doc: str = ""

    @property
    def settable(self) -> bool:
        """Whether a ``.dsx`` ``with Optimizer(...)`` can set it."""
        return bool(self.choices) or any(k != "python" for k in self.kinds)

    @property
    def type_text(self) -> str:
        if self.choices:
            text = " | ".join(repr(c).replace("'", '"') for c in self.choices)
        else:
            shown = [_WORDS[k] for k in self.kinds if k != "python"]
            text = " | ".join(shown) or "a Python object"
        return text + (" | none" if self.optional else "")

    def check(self, value: Any) -> str | None:
        """Why ``value`` (a ``.dsx`` constant) does not fit this setting, or ``None``."""
        if value is None:
            return None if self.optional else f"`{self.name}` cannot be none"
        if self.choices:
            if value in self.choices:
                return None
            return f"`{self.name}` takes one of {self.type_text}, not {_show(value)}"
        for kind in self.kinds:
            if _fits(kind, value):
                return None
        return f"`{self.name}` takes {self.type_text}, not {_show(value)}"


@dataclass(frozen=True)
class OptimizerInfo:
    """One optimizer a ``.dsx`` ``optimize`` block can name.

    Attributes:
        name: the name in ``with Name(...)``.
        available: whether this version of dsx has it (others are planned and rejected).
        doc: one line saying what it does.
        settings: its settings by name (empty when not available).
    """

    name: str
    available: bool
    doc: str = ""
    settings: Mapping[str, SettingInfo] = field(default_factory=dict)


def describe_optimizer(name: str, cls: type | None, planned_doc: str = "") -> OptimizerInfo:
    """The registry entry for optimizer ``name`` implemented by ``cls`` (``None``: planned)."""
    if cls is None:
        return OptimizerInfo(name, False, planned_doc)
    return OptimizerInfo(name, True, _first_line(cls.__doc__), _settings_of(cls))


# -- reading a class ------------------------------------------------------------------------


def _settings_of(cls: type) -> dict[str, SettingInfo]:
    from dsx.teleprompt.base import Teleprompter

    out: dict[str, SettingInfo] = {}
    sources: list[tuple[type, frozenset[str] | None]] = [(cls, None)]
    for source, keys in getattr(cls, "forwarded_settings", ()):
        if isinstance(source, str):  # "module:Class", imported here to avoid import cycles
            module, _, name = source.partition(":")
            source = getattr(importlib.import_module(module), name)
        sources.append((source, frozenset(keys)))
    sources.append((Teleprompter, None))
    for source, keys in sources:
        docs = _arg_docs(source)
        for param, hint in _params(source):
            if keys is not None and param.name not in keys:
                continue
            if param.name in out:
                continue
            out[param.name] = _setting(param, hint, docs.get(param.name, ""))
    return out


def _params(cls: type) -> list[tuple[inspect.Parameter, Any]]:
    init = cls.__init__  # type: ignore[misc]
    params = [
        p
        for p in inspect.signature(init).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    ]
    module = inspect.getmodule(init)
    ns = dict(vars(module)) if module is not None else {}
    out = []
    for p in params:
        ann = p.annotation
        if isinstance(ann, str):
            try:
                ann = eval(ann, ns)  # the annotations of our own optimizer modules
            except Exception:
                ann = Any
        out.append((p, ann))
    return out


def _setting(param: inspect.Parameter, hint: Any, doc: str) -> SettingInfo:
    kinds: list[Kind] = []
    choices: list[Any] = []
    optional = False
    for member in _members(hint):
        if member is type(None):
            optional = True
        elif typing.get_origin(member) is Literal:
            for arg in typing.get_args(member):
                if arg is None:
                    optional = True
                else:
                    choices.append(arg)
        else:
            kind = _kind(member)
            if kind not in kinds:
                kinds.append(kind)
    if "model" in kinds and "str" in kinds:
        kinds.remove("str")
    if "int" in kinds and "float" in kinds:
        kinds.remove("int")
    default = REQUIRED if param.default is inspect.Parameter.empty else param.default
    if default is None:
        optional = True
    if not kinds and not choices:
        kinds.append("python")
    return SettingInfo(param.name, tuple(kinds), default, optional, tuple(choices), doc)


def _members(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(m for arg in typing.get_args(hint) for m in _members(arg))
    return (hint,)


def _kind(member: Any) -> Kind:
    from dsx.runtime.lm_base import BaseLM

    if member is Any:
        return "any"
    if member in _SIMPLE:
        return _SIMPLE[member]
    origin = typing.get_origin(member) or member
    if isinstance(origin, type):
        if issubclass(origin, BaseLM):
            return "model"
        if origin is list:
            return "list"
        if origin is dict:
            return "dict"
    return "python"


def _fits(kind: Kind, value: Any) -> bool:
    if kind == "any":
        return True
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind in ("str", "model"):
        return isinstance(value, str)
    if kind == "list":
        return isinstance(value, list)
    if kind == "dict":
        return isinstance(value, dict)
    return False


_ARG = re.compile(r"^\s{4,8}(\**[A-Za-z_][\w, ]*):\s*(.*)$")


def _arg_docs(cls: type) -> dict[str, str]:
    """``name -> text`` from the ``Args:`` section of the class docstring (an entry's
    continuation lines, indented deeper, are joined to it)."""
    doc = inspect.getdoc(cls) or ""
    lines = (doc.split("Args:", 1)[1] if "Args:" in doc else "").splitlines()
    out: dict[str, str] = {}
    current: list[str] = []
    for line in lines:
        if line and not line.startswith(" "):
            break  # the next section
        if current and line.startswith(" " * 8):  # the entry goes on
            for name in current:
                out[name] += " " + line.strip()
            continue
        m = _ARG.match("    " + line)
        if m is None:
            current = []
            continue
        text = m.group(2).strip()
        current = []
        for name in m.group(1).split(","):
            name = name.strip()
            if name and not name.startswith("*") and name not in out:
                out[name] = text
                current.append(name)
    return out


def _first_line(doc: str | None) -> str:
    return (inspect.cleandoc(doc).splitlines() or [""])[0] if doc else ""


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)
