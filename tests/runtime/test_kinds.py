"""The module kinds a `.dsx` file may declare come from the runtime's classes
(`dsx_kind`, collected by `dsx.runtime.kinds.registry`), and agree with them both ways:
every registered kind is a public dsx class that takes what the registry says, and every
public dsx module class is a registered kind. The checker's table is this registry."""

from __future__ import annotations

import inspect

import dsx
from dsx.compiler import _env
from dsx.runtime.kinds import kind_classes, registry
from dsx.runtime.module import Module


def _params(cls: type) -> tuple[list[str], bool]:
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    names = [p.name for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
    return names, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def test_every_kind_is_a_public_class_that_takes_what_the_registry_says():
    for cls in kind_classes():
        info = cls.dsx_kind
        assert info.name == cls.__name__ and getattr(dsx, info.name) is cls
        names, open_kwargs = _params(cls)
        assert info.takes_signature == (names[:1] == ["signature"]), info.name
        assert info.wraps_module == ("module" in names), info.name
        for setting in info.kwargs:
            assert setting in names or open_kwargs, (info.name, setting)


def test_every_public_module_class_is_a_kind():
    public = {
        name
        for name in dir(dsx)
        if not name.startswith("_")
        and inspect.isclass(obj := getattr(dsx, name))
        and issubclass(obj, Module)
        and obj is not Module
    }
    assert public == set(registry())


def test_the_checker_knows_exactly_the_runtime_kinds():
    assert registry() == _env.KINDS
