"""Semantic tokens: names coloured by what they resolve to (a signature, a field, a module
member, a parameter, a local, a built-in kind...), on top of the TextMate grammar.

The tokens of a document are computed once per text (the built-in names of declarations
an edit left alone are reused) and answered whole, for a range, or as a delta against an
earlier result."""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from lsprotocol import types

from dsx.compiler import _env
from dsx.diagnostics import Origin, Span
from dsx.grammar import ast
from dsx.lsp.protocol import RawJson
from dsx.lsp.state import Document, Session
from dsx.runtime.resources import RETRIEVERS

__all__ = [
    "LEGEND",
    "as_json",
    "encode",
    "semantic_tokens",
    "semantic_tokens_delta",
    "semantic_tokens_range",
    "tokens",
]

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
    "lm": ("variable", _READONLY),
    "retriever": ("variable", _READONLY),
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


#: ``(line, column, length, type, modifiers)`` of one token, absolute.
Token = tuple[int, int, int, int, int]

#: How many earlier results per document a delta request may refer to.
KEEP_RESULTS = 2


@dataclass
class _BlockTokens:
    """One block's tokens, relative to the block's first line (blocks start a line)."""

    origin: Origin
    text: str
    items: list[tuple[int, int, int, int]]  # (lo, hi, type, modifiers), block offsets
    rel: list[Token]  # (line in the block, column, length, type, modifiers)
    # LSP's relative encoding of every token after the first (each against the one before)
    encoded_rest: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.encoded_rest = encode(self.rel)[5:]


@dataclass
class _State:
    """A document's semantic-token cache (kept on the :class:`Document`)."""

    key: tuple[object, ...] | None = None
    # each block with tokens, and the line it starts on (for the current key)
    placed: list[tuple[int, _BlockTokens]] = field(default_factory=list)
    tokens: list[Token] | None = None  # the absolute tokens, made when asked
    builtins: dict[int, tuple[Any, list[tuple[ast.Ident, str]]]] = field(default_factory=dict)
    blocks: dict[int, _BlockTokens] = field(default_factory=dict)  # id(origin) -> tokens
    results: dict[str, list[int]] = field(default_factory=dict)  # result id -> data
    counter: int = 0


def _state(doc: Document) -> _State:
    state = doc.extras.get("semantic_tokens")
    if not isinstance(state, _State):
        state = doc.extras["semantic_tokens"] = _State()
    return state


def tokens(session: Session, doc: Document) -> list[Token]:
    """Every token of ``doc``, sorted, with absolute lines; computed once per text."""
    state = _refresh(session, doc)
    if state.tokens is None:
        state.tokens = [
            (first + dl, col, n, t, m)
            for first, block in state.placed
            for dl, col, n, t, m in block.rel
        ]
    return state.tokens


def _encoded(session: Session, doc: Document) -> list[int]:
    """LSP's relative encoding of :func:`tokens`, joined from each block's own."""
    data: list[int] = []
    prev_line = prev_col = 0
    for first, block in _refresh(session, doc).placed:
        dl, col, n, t, m = block.rel[0]
        line = first + dl
        data.extend((line - prev_line, col - prev_col if line == prev_line else col, n, t, m))
        data.extend(block.encoded_rest)
        last = block.rel[-1]
        prev_line, prev_col = first + last[0], last[1]
    return data


def _refresh(session: Session, doc: Document) -> _State:
    """The document's token state, brought up to date with its text and analysis.

    Spans are relative to their block's origin, so each block's tokens are gathered in
    block offsets; a block whose text and tokens an edit left alone keeps its converted
    lines, columns and encoding (only the lines above it may have moved)."""
    analysis = session.analyze(doc)
    state = _state(doc)
    key = (doc.revision, id(analysis), doc.analysis_key, session.encoding)
    if state.key == key:
        return state
    pf = analysis.files.get(doc.path)
    if pf is None:
        state.key, state.placed, state.tokens = key, [], None
        return state
    blocks = pf.blocks
    per_origin: dict[int, dict[int, tuple[int, int, int]]] = {id(b.span.origin): {} for b in blocks}
    starts = [b.span.origin.offset for b in blocks]
    path = doc.path

    def slot(span: Span) -> tuple[dict[int, tuple[int, int, int]], int, int] | None:
        origin = span.origin
        found = per_origin.get(id(origin))
        if found is not None:
            return found, span.lo, span.hi
        if origin.file != path:
            return None
        # a span built over two origins is absolute: put it in its block
        start = span.start
        i = bisect.bisect_right(starts, start) - 1
        if i < 0:
            return None
        base = starts[i]
        return per_origin[id(blocks[i].span.origin)], start - base, span.end - base

    for sym in analysis.symbols.values():
        if sym.kind in _BY_KIND:
            where = slot(sym.span)
            if where is not None:
                kind, mods = _BY_KIND[sym.kind]
                where[0][where[1]] = (where[2], _T[kind], mods | _DECLARATION)
    symbols = analysis.symbols
    for ref in analysis.references:
        target = symbols.get(ref.key)
        if target is None or target.kind not in _BY_KIND:
            continue
        where = slot(ref.span)
        if where is not None and where[1] not in where[0]:
            kind, mods = _BY_KIND[target.kind]
            where[0][where[1]] = (where[2], _T[kind], mods)
    # A declaration the edit left alone is the same object: its built-in names too.
    cache: dict[int, tuple[Any, list[tuple[ast.Ident, str]]]] = {}
    for block in blocks:
        decl = block.decl
        if decl is None:
            continue
        entry = state.builtins.get(id(decl))
        if entry is None or entry[0] is not decl:
            entry = (decl, list(_builtin_names([decl])))
        cache[id(decl)] = entry
        for ident, kind in entry[1]:
            where = slot(ident.span)
            if where is not None and where[1] not in where[0]:
                where[0][where[1]] = (where[2], _T[kind], _DEFAULT_LIBRARY)
    state.builtins = cache

    codec = doc.codec(session.encoding)
    done: dict[int, _BlockTokens] = {}
    placed: list[tuple[int, _BlockTokens]] = []
    for block in blocks:
        origin = block.span.origin
        found = per_origin[id(origin)]
        items = [(lo, *found[lo]) for lo in sorted(found)]
        kept = state.blocks.get(id(origin))
        if (
            kept is None
            or kept.origin is not origin
            or kept.text != block.text
            or (kept.items != items)
        ):
            kept = _BlockTokens(origin, block.text, items, _convert(codec, block, items))
        done[id(origin)] = kept
        if kept.rel:
            placed.append((codec.line_of(origin.offset), kept))
    state.blocks = done
    state.key, state.placed, state.tokens = key, placed, None
    return state


def _convert(codec: Any, block: ast.Block, items: list[tuple[int, int, int, int]]) -> list[Token]:
    """``items`` (block offsets) as lines relative to the block, columns and lengths in
    the client's units; tokens that are empty or span a line break are left out."""
    base = block.span.origin.offset
    text = block.text
    first = codec.line_of(base)
    rel: list[Token] = []
    for lo, hi, ttype, mods in items:
        if hi <= lo or "\n" in text[lo:hi]:
            continue
        line, col = codec.line_col(base + lo)
        rel.append((line - first, col, codec.line_col(base + hi)[1] - col, ttype, mods))
    return rel


def encode(toks: list[Token]) -> list[int]:
    """LSP's relative encoding of ``toks`` (sorted)."""
    data: list[int] = []
    prev_line = prev_char = 0
    for line, col, length, ttype, mods in toks:
        delta_line = line - prev_line
        data.extend((delta_line, col - prev_char if delta_line == 0 else col, length, ttype, mods))
        prev_line, prev_char = line, col
    return data


def _remember(doc: Document, data: list[int]) -> str:
    state = _state(doc)
    state.counter += 1
    result_id = f"{doc.revision}.{state.counter}"
    state.results[result_id] = data
    while len(state.results) > KEEP_RESULTS:
        del state.results[next(iter(state.results))]
    return result_id


def semantic_tokens(session: Session, doc: Document) -> types.SemanticTokens:
    """``textDocument/semanticTokens/full``: every token, with a result id for deltas."""
    data = _encoded(session, doc)
    return types.SemanticTokens(data=data, result_id=_remember(doc, data))


def as_json(result: types.SemanticTokens | types.SemanticTokensDelta) -> RawJson:
    """A result as JSON text (``json.dumps`` of 17,000 integers is ~1 ms; cattrs ~10)."""
    if isinstance(result, types.SemanticTokens):
        out: dict[str, Any] = {"data": result.data}
    else:
        out = {
            "edits": [
                {"start": e.start, "deleteCount": e.delete_count, "data": e.data or []}
                for e in result.edits
            ]
        }
    if result.result_id is not None:
        out["resultId"] = result.result_id
    return RawJson(json.dumps(out))


def semantic_tokens_delta(
    session: Session, doc: Document, previous: str
) -> types.SemanticTokens | types.SemanticTokensDelta:
    """``textDocument/semanticTokens/full/delta``: one edit turning the result
    ``previous`` into the current tokens (the full result when ``previous`` is unknown)."""
    old = _state(doc).results.get(previous)
    data = _encoded(session, doc)
    result_id = _remember(doc, data)
    if old is None:
        return types.SemanticTokens(data=data, result_id=result_id)
    prefix = 0
    limit = min(len(old), len(data))
    while prefix < limit and old[prefix] == data[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[-1 - suffix] == data[-1 - suffix]:
        suffix += 1
    edits = []
    if prefix < len(old) - suffix or prefix < len(data) - suffix:
        edits.append(
            types.SemanticTokensEdit(
                start=prefix,
                delete_count=len(old) - suffix - prefix,
                data=data[prefix : len(data) - suffix],
            )
        )
    return types.SemanticTokensDelta(edits=edits, result_id=result_id)


def semantic_tokens_range(
    session: Session, doc: Document, rng: types.Range
) -> types.SemanticTokens:
    """``textDocument/semanticTokens/range``: the tokens that start inside ``rng``."""
    toks = tokens(session, doc)
    first, last = (rng.start.line, rng.start.character), (rng.end.line, rng.end.character)
    lo = bisect.bisect_left(toks, first, key=lambda t: (t[0], t[1]))
    hi = bisect.bisect_left(toks, last, key=lambda t: (t[0], t[1]))
    return types.SemanticTokens(data=encode(toks[lo:hi]))


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
            if name in _env.KINDS or name in _env.KNOWN_OPTIMIZERS or name in RETRIEVERS:
                yield node.func.name, "class"
            elif name in _env.BUILTIN_FUNCTIONS or name in ("jsonl", "csv", "json", "fallback"):
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
