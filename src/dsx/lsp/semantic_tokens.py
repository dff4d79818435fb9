"""Semantic tokens: names coloured by what they resolve to (a signature, a field, a module
member, a parameter, a local, a built-in kind...), on top of the TextMate grammar."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from lsprotocol import types

from dsx.compiler import _env
from dsx.diagnostics import Span
from dsx.grammar import ast
from dsx.lsp.state import Document, Session

__all__ = ["LEGEND", "semantic_tokens"]

TOKEN_TYPES = [
    "namespace",
    "type",
    "class",
    "enum",
    "interface",
    "struct",
    "parameter",
    "variable",
    "property",
    "enumMember",
    "function",
    "method",
]
TOKEN_MODIFIERS = ["declaration", "readonly", "defaultLibrary"]
LEGEND = types.SemanticTokensLegend(token_types=TOKEN_TYPES, token_modifiers=TOKEN_MODIFIERS)

_T = {name: i for i, name in enumerate(TOKEN_TYPES)}
_DECLARATION, _READONLY, _DEFAULT_LIBRARY = 1, 2, 4

_BY_KIND = {
    "signature": ("interface", 0),
    "type": ("struct", 0),
    "enum": ("enum", 0),
    "module": ("class", 0),
    "program": ("function", _READONLY),
    "data": ("variable", _READONLY),
    "metric": ("function", _READONLY),
    "python": ("namespace", 0),
    "field": ("property", 0),
    "record_field": ("property", 0),
    "enum_member": ("enumMember", 0),
    "submodule": ("method", 0),
    "param": ("parameter", 0),
    "local": ("variable", 0),
}
_BUILTIN_TYPES = frozenset({*_env.PRIMITIVE_TYPES, *_env.GENERIC_TYPES})


def semantic_tokens(session: Session, doc: Document) -> types.SemanticTokens:
    analysis = session.analyze(doc)
    spans: dict[int, tuple[int, int, int]] = {}  # start -> (end, type, modifiers)
    for sym in analysis.symbols.values():
        if sym.span.file == doc.path and sym.kind in _BY_KIND:
            kind, mods = _BY_KIND[sym.kind]
            spans[sym.span.start] = (sym.span.end, _T[kind], mods | _DECLARATION)
    symbols = analysis.symbols
    for ref in analysis.references:
        if ref.span.file != doc.path or ref.span.start in spans:
            continue
        target = symbols.get(ref.key)
        if target is not None and target.kind in _BY_KIND:
            kind, mods = _BY_KIND[target.kind]
            spans[ref.span.start] = (ref.span.end, _T[kind], mods)
    pf = analysis.files.get(doc.path)
    if pf is not None:
        for ident, kind in _builtin_names(pf.decls):
            if ident.span.start not in spans:
                spans[ident.span.start] = (ident.span.end, _T[kind], _DEFAULT_LIBRARY)
    codec = doc.codec(session.encoding)
    data: list[int] = []
    prev_line = prev_char = 0
    text = doc.text
    for start in sorted(spans):
        end, ttype, mods = spans[start]
        if end <= start or "\n" in text[start:end]:
            continue
        pos = codec.position(start)
        length = codec.position(end).character - pos.character
        delta_line = pos.line - prev_line
        delta_char = pos.character - prev_char if delta_line == 0 else pos.character
        data.extend((delta_line, delta_char, length, ttype, mods))
        prev_line, prev_char = pos.line, pos.character
    return types.SemanticTokens(data=data)


def _builtin_names(decls: list[Any]) -> Iterator[tuple[ast.Ident, str]]:
    """Built-in kinds, types and functions named in ``decls``."""
    stack: list[Any] = list(decls)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.NamedType | ast.GenericType):
            if node.name.name in _BUILTIN_TYPES:
                yield node.name, "type"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.NameRef):
            name = node.func.name.name
            if name in _env.KINDS or name in _env.KNOWN_OPTIMIZERS:
                yield node.func.name, "class"
            elif name in _env.BUILTIN_FUNCTIONS or name in ("jsonl", "csv", "json"):
                yield node.func.name, "function"
        elif isinstance(node, ast.NameRef) and node.name.name in _env.BUILTIN_METRICS:
            yield node.name, "function"
        if isinstance(node, tuple | list):
            stack.extend(node)
        elif hasattr(node, "__dataclass_fields__") and not isinstance(node, ast.Ident):
            for name in node.__dataclass_fields__:
                child = getattr(node, name, None)
                if child is not None and not isinstance(child, str | int | float | bool | Span):
                    stack.append(child)
