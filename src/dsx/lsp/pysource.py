"""What a `use python` module defines, read from its source (never imported): functions,
classes and values with their signature, docstring and line — for hover, go to definition,
signature help and `alias.` completion.

Names a module imports (``from __future__ import annotations``, ``import os``, ``from typing
import Any``) are not its own tools and are left out.
"""

from __future__ import annotations

import ast as pyast
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dsx.compiler import _env
from dsx.compiler.analysis import Analysis
from dsx.lsp import locate

__all__ = ["PyDef", "PyParam", "PyTarget", "member_at", "module_defs"]

PyKind = Literal["function", "class", "value"]


@dataclass(frozen=True, slots=True)
class PyParam:
    name: str
    label: str  # as written: `k: int = 3`


@dataclass(frozen=True, slots=True)
class PyDef:
    """A top-level definition of a Python module."""

    name: str
    kind: PyKind
    line: int  # 0-based
    column: int
    signature: str  # `def search(query: str, k: int = 3) -> list[str]`
    params: tuple[PyParam, ...] = ()
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class PyTarget:
    """``alias.name`` under the cursor: the module, its file and the definition."""

    start: int
    end: int
    alias: str
    name: str
    module: str
    path: Path | None
    definition: PyDef | None


_CACHE: dict[str, tuple[tuple[int, int], dict[str, PyDef] | None]] = {}


def module_defs(path: Path) -> dict[str, PyDef] | None:
    """The top-level definitions of the Python file ``path`` (``None``: unreadable)."""
    key = str(path)
    try:
        st = os.stat(key)
    except OSError:
        return None
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _CACHE.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        tree = pyast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        defs = None
    else:
        defs = _defs(tree)
    _CACHE[key] = (stamp, defs)
    return defs


def _defs(tree: pyast.Module) -> dict[str, PyDef]:
    out: dict[str, PyDef] = {}
    for node in tree.body:
        if isinstance(node, pyast.FunctionDef | pyast.AsyncFunctionDef):
            params = _params(node.args)
            ret = f" -> {pyast.unparse(node.returns)}" if node.returns is not None else ""
            prefix = "async def" if isinstance(node, pyast.AsyncFunctionDef) else "def"
            out[node.name] = PyDef(
                node.name,
                "function",
                node.lineno - 1,
                node.col_offset,
                f"{prefix} {node.name}({', '.join(p.label for p in params)}){ret}",
                params,
                pyast.get_docstring(node),
            )
        elif isinstance(node, pyast.ClassDef):
            init = next(
                (n for n in node.body if isinstance(n, pyast.FunctionDef) and n.name == "__init__"),
                None,
            )
            params = _params(init.args)[1:] if init is not None else ()
            bases = ", ".join(pyast.unparse(b) for b in node.bases)
            out[node.name] = PyDef(
                node.name,
                "class",
                node.lineno - 1,
                node.col_offset,
                f"class {node.name}" + (f"({bases})" if bases else ""),
                tuple(params),
                pyast.get_docstring(node),
            )
        elif isinstance(node, pyast.Assign | pyast.AnnAssign):
            targets = node.targets if isinstance(node, pyast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, pyast.Name) and not target.id.startswith("_"):
                    value = node.value
                    text = pyast.unparse(value) if value is not None else "..."
                    if len(text) > 60:
                        text = text[:59] + "…"
                    out.setdefault(
                        target.id,
                        PyDef(
                            target.id,
                            "value",
                            node.lineno - 1,
                            node.col_offset,
                            f"{target.id} = {text}",
                        ),
                    )
    return out


def _params(args: pyast.arguments) -> tuple[PyParam, ...]:
    out: list[PyParam] = []
    positional = [*args.posonlyargs, *args.args]
    defaults: list[pyast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += list(args.defaults)
    for arg, default in zip(positional, defaults, strict=True):
        out.append(PyParam(arg.arg, _label(arg, default)))
    if args.vararg is not None:
        out.append(PyParam(args.vararg.arg, "*" + _label(args.vararg, None)))
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        out.append(PyParam(arg.arg, _label(arg, kw_default)))
    if args.kwarg is not None:
        out.append(PyParam(args.kwarg.arg, "**" + _label(args.kwarg, None)))
    return tuple(out)


def _label(arg: pyast.arg, default: pyast.expr | None) -> str:
    text = arg.arg
    if arg.annotation is not None:
        text += f": {pyast.unparse(arg.annotation)}"
    if default is not None:
        text += (" = " if arg.annotation is not None else "=") + pyast.unparse(default)
    return text


def resolve(analysis: Analysis, doc_path: str, alias: str) -> tuple[str, Path | None] | None:
    """``(module, source file)`` of the `use python` alias ``alias``."""
    model = analysis.model
    imp = model.python_import(alias) if model is not None else None
    if imp is None:
        return None
    base = Path(doc_path).parent if not doc_path.startswith("<") else Path.cwd()
    return imp.module, _env.find_python_source(imp.module, base)


def member_at(analysis: Analysis, doc_path: str, text: str, offset: int) -> PyTarget | None:
    """The ``alias.name`` of a `use python` module at ``offset`` (on ``name``)."""
    word = locate.word_at(text, offset)
    if word is None:
        return None
    start, end, name = word
    dot = start - 1
    while dot >= 0 and text[dot] in " \t":
        dot -= 1
    if dot < 0 or text[dot] != ".":
        return None
    before = locate.word_at(text, dot)
    if before is None or before[1] != dot:
        alias_end = dot
        while alias_end > 0 and text[alias_end - 1] in " \t":
            alias_end -= 1
        before = locate.word_at(text, alias_end)
        if before is None:
            return None
    alias = before[2]
    found = resolve(analysis, doc_path, alias)
    if found is None:
        return None
    module, path = found
    defs = module_defs(path) if path is not None else None
    return PyTarget(start, end, alias, name, module, path, (defs or {}).get(name))
