"""DSPy's public names and module paths on dsx: ``import dsx.compat.dspy as dspy``.

Every DSPy path listed in :mod:`dsx.compat.dspy._paths` imports —
``from dsx.compat.dspy.teleprompt import BootstrapFewShot``,
``from dsx.compat.dspy.utils.dummies import DummyLM`` — and gives the dsx object with the
same role. ``dspy.ChatAdapter`` is :class:`dsx.DSPyChatAdapter` (DSPy's prompt layout);
``dspy.utils.dummies.DummyLM`` answers in the active adapter's layout. A DSPy name dsx
has no equivalent for raises an ``AttributeError`` that says what to use instead.

:func:`install` makes ``import dspy`` (and ``from dspy.x import y``) load these modules,
so a DSPy code base runs without editing its imports — only in a process where the real
DSPy is not wanted.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence
from typing import Any

from dsx.compat.dspy._paths import MISSING, MODULES
from dsx.compat.dspy._state import convert_dspy_state as convert_dspy_state
from dsx.compat.dspy._state import load_dspy_state as load_dspy_state
from dsx.compat.dspy._translate import Note as Note
from dsx.compat.dspy._translate import Translation as Translation
from dsx.compat.dspy._translate import translate_dspy as translate_dspy
from dsx.compat.dspy._translate import translate_dspy_file as translate_dspy_file

__all__ = [
    "Note",
    "Translation",
    "convert_dspy_state",
    "install",
    "load_dspy_state",
    "translate_dspy",
    "translate_dspy_file",
    "uninstall",
]

_PREFIX = __name__ + "."


def _resolve(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _lookup(path: str, name: str) -> Any:
    table = MODULES.get(path, {})
    target = table.get(name)
    if target is not None:
        return _resolve(target)
    child = f"{path}.{name}" if path else name
    if child in MODULES:
        return importlib.import_module(_PREFIX + child)
    where = f"dspy.{path}" if path else "dspy"
    if name in MISSING:
        raise AttributeError(f"{where}.{name} has no dsx equivalent: {MISSING[name]}")
    raise AttributeError(f"module {where!r} has no attribute {name!r} in dsx.compat.dspy")


def _module_getattr(path: str) -> Any:
    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = _lookup(path, name)
        return value

    return __getattr__


def _children(path: str) -> list[str]:
    depth = path.count(".") + 1 if path else 0
    prefix = f"{path}." if path else ""
    return sorted(
        p[len(prefix) :] for p in MODULES if p and p.startswith(prefix) and p.count(".") == depth
    )


class _Loader(importlib.abc.Loader):
    """Builds a module of :data:`MODULES` whose names resolve on first access."""

    def __init__(self, path: str) -> None:
        self.path = path

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        module.__getattr__ = _module_getattr(self.path)  # type: ignore[method-assign]
        module.__all__ = sorted(MODULES[self.path])  # type: ignore[attr-defined]
        module.__path__ = []  # a package: its submodules come from the finder
        module.__doc__ = f"dsx's equivalents of dspy.{self.path} (see dsx.compat.dspy)."


class _AliasLoader(importlib.abc.Loader):
    """``dspy.x`` as the already-built ``dsx.compat.dspy.x`` (after :func:`install`)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: types.ModuleType) -> None:
        return None


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.alias_dspy = False

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.startswith(_PREFIX):
            sub = fullname[len(_PREFIX) :]
            if sub in MODULES and not sub.startswith("_"):
                return importlib.machinery.ModuleSpec(fullname, _Loader(sub), is_package=True)
            return None
        if self.alias_dspy and (fullname == "dspy" or fullname.startswith("dspy.")):
            sub = fullname[len("dspy.") :] if fullname != "dspy" else ""
            if sub == "" or sub in MODULES:
                name = __name__ if sub == "" else _PREFIX + sub
                return importlib.machinery.ModuleSpec(fullname, _AliasLoader(name), is_package=True)
        return None


_finder = _Finder()
if not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.insert(0, _finder)


def install() -> None:
    """Make ``import dspy`` (and ``dspy.*`` paths) load ``dsx.compat.dspy``.

    Refused when the real DSPy is already imported in this process (its objects and these
    would mix). :func:`uninstall` undoes it.
    """
    loaded = sys.modules.get("dspy")
    if loaded is not None and loaded is not sys.modules[__name__]:
        raise RuntimeError(
            "the real dspy is already imported in this process; call "
            "dsx.compat.dspy.install() before anything imports dspy, or use "
            "`import dsx.compat.dspy as dspy` instead"
        )
    _finder.alias_dspy = True
    sys.modules["dspy"] = sys.modules[__name__]


def uninstall() -> None:
    """Stop aliasing ``dspy`` (modules already imported under ``dspy.*`` are dropped)."""
    _finder.alias_dspy = False
    for name in [n for n in sys.modules if n == "dspy" or n.startswith("dspy.")]:
        module = sys.modules[name]
        if module.__name__ == __name__ or module.__name__.startswith(_PREFIX):
            del sys.modules[name]


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    value = _lookup("", name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(MODULES[""]) | set(_children("")) | set(__all__))
