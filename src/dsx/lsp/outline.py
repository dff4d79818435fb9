"""Document symbols (the outline) and workspace symbols (go to symbol in workspace)."""

from __future__ import annotations

import json
from typing import Any

from lsprotocol import types

from dsx.grammar import ast
from dsx.lsp.codec import PositionCodec
from dsx.lsp.protocol import RawJson
from dsx.lsp.state import Document, Session, uri_of

__all__ = ["document_symbols", "document_symbols_json", "workspace_symbols"]

SK = types.SymbolKind

_KINDS: dict[type, types.SymbolKind] = {
    ast.UseDecl: SK.Namespace,
    ast.ImportDecl: SK.File,
    ast.SignatureDecl: SK.Interface,
    ast.TypeDecl: SK.Struct,
    ast.EnumDecl: SK.Enum,
    ast.ModuleDecl: SK.Class,
    ast.ProgramDecl: SK.Object,
    ast.DataDecl: SK.Variable,
    ast.MetricDecl: SK.Function,
    ast.OptimizeDecl: SK.Event,
    ast.TestDecl: SK.Method,
    ast.LmDecl: SK.Constant,
    ast.RetrieverDecl: SK.Constant,
}


def _name(decl: Any) -> tuple[str, Any, str]:
    """``(name, span of the name, detail)`` of a top-level declaration."""
    if isinstance(decl, ast.UseDecl):
        return decl.alias.name, decl.alias.span, f'python "{decl.module.value}"'
    if isinstance(decl, ast.ImportDecl):
        return decl.path.value, decl.path.span, "import"
    if isinstance(decl, ast.OptimizeDecl):
        return f"optimize {decl.target.name}", decl.target.span, "optimize"
    if isinstance(decl, ast.TestDecl):
        return f"test {decl.name.name}", decl.name.span, f"for {decl.program.name}"
    kind = {
        ast.SignatureDecl: "signature",
        ast.TypeDecl: "type",
        ast.EnumDecl: "enum",
        ast.ModuleDecl: "module",
        ast.ProgramDecl: "program",
        ast.DataDecl: "data",
        ast.MetricDecl: "metric",
        ast.LmDecl: "lm",
        ast.RetrieverDecl: "retriever",
    }.get(type(decl), "")
    return decl.name.name, decl.name.span, kind


def _sym(
    codec: PositionCodec,
    name: str,
    kind: types.SymbolKind,
    span: Any,
    sel: Any,
    detail: str = "",
    children: list[types.DocumentSymbol] | None = None,
) -> types.DocumentSymbol:
    rng = codec.range(span.start, span.end)
    sel_rng = codec.range(sel.start, sel.end)
    return types.DocumentSymbol(
        name=name or "?",
        kind=kind,
        range=rng,
        selection_range=sel_rng,
        detail=detail or None,
        children=children or None,
    )


def _children(codec: PositionCodec, decl: Any, text: str) -> list[types.DocumentSymbol]:
    out = []
    if isinstance(decl, ast.SignatureDecl):
        for f in decl.fields:
            out.append(
                _sym(
                    codec,
                    f.name.name,
                    SK.Field,
                    f.span,
                    f.name.span,
                    f"{f.direction} {_src(text, f.type.span)}",
                )
            )
    elif isinstance(decl, ast.TypeDecl):
        for rf in decl.fields:
            out.append(
                _sym(codec, rf.name.name, SK.Field, rf.span, rf.name.span, _src(text, rf.type.span))
            )
    elif isinstance(decl, ast.EnumDecl):
        for m in decl.members:
            out.append(_sym(codec, m.name.name, SK.EnumMember, m.span, m.name.span))
    elif isinstance(decl, ast.ModuleDecl):
        for p in decl.params:
            detail = _src(text, p.type.span) if p.type is not None else ""
            out.append(_sym(codec, p.name.name, SK.TypeParameter, p.span, p.name.span, detail))
        for member in decl.members_order:
            if isinstance(member, ast.SubmoduleDecl):
                out.append(
                    _sym(
                        codec,
                        member.name.name,
                        SK.Property,
                        member.span,
                        member.name.span,
                        _src(text, member.value.span),
                    )
                )
            else:
                params = ", ".join(_src(text, p.span) for p in member.params)
                out.append(
                    _sym(codec, "forward", SK.Method, member.span, member.keyword, f"({params})")
                )
    return out


def _src(text: str, span: Any) -> str:
    snippet = " ".join(text[span.start : span.end].split())
    return snippet if len(snippet) <= 60 else snippet[:59] + "…"


def document_symbols(session: Session, doc: Document) -> list[types.DocumentSymbol]:
    """The outline. An open document's comes from its analysis (shared with every other
    feature, re-parsed block by block); a block whose text an edit left alone keeps its
    symbol from the last answer, its lines moved when lines above it were added or
    removed."""
    converter = _converter_()
    return [
        converter.structure(entry.data, types.DocumentSymbol) for entry in _symbols(session, doc)
    ]


def document_symbols_json(session: Session, doc: Document) -> RawJson:
    """:func:`document_symbols` as the JSON of the answer (each block's JSON is kept too)."""
    return RawJson("[" + ",".join(entry.text for entry in _symbols(session, doc)) + "]")


_converter: Any = None


def _converter_() -> Any:
    global _converter
    if _converter is None:
        from pygls.protocol import default_converter

        _converter = default_converter()
    return _converter


class _Entry:
    """One block's symbol: as JSON data (lines as of ``line``, the block's first) and text."""

    __slots__ = ("data", "line", "text")

    def __init__(self, line: int, data: dict[str, Any]) -> None:
        self.line, self.data, self.text = line, data, json.dumps(data)

    def move_to(self, line: int) -> None:
        _shift(self.data, line - self.line)
        self.line, self.text = line, json.dumps(self.data)


def _shift(data: dict[str, Any], delta: int) -> None:
    for key in ("range", "selectionRange"):
        rng = data[key]
        rng["start"]["line"] += delta
        rng["end"]["line"] += delta
    for child in data.get("children") or ():
        _shift(child, delta)


def _symbols(session: Session, doc: Document) -> list[_Entry]:
    if session.get(doc.uri) is doc:
        pf = session.analyze(doc).files.get(doc.path)
    else:
        pf = session.parsed(doc.path)
    if pf is None:
        return []
    codec = doc.codec(session.encoding)
    previous = doc.extras.get("outline")
    # block text -> entries (a block's symbol depends on its text only; blocks start a line)
    last: dict[str, list[_Entry]] = previous if isinstance(previous, dict) else {}
    cache: dict[str, list[_Entry]] = {}
    out = []
    for block in pf.blocks:
        decl = block.decl
        if decl is None:
            continue
        line = codec.line_of(block.span.start)
        kept = last.get(block.text)
        entry = kept.pop() if kept else None
        if entry is None:
            name, sel, detail = _name(decl)
            sym = _sym(
                codec,
                name,
                _KINDS.get(type(decl), SK.Variable),
                _trim(doc.text, decl.span),
                sel,
                detail,
                _children(codec, decl, doc.text),
            )
            entry = _Entry(line, _converter_().unstructure(sym))
        elif entry.line != line:
            entry.move_to(line)
        cache.setdefault(block.text, []).append(entry)
        out.append(entry)
    doc.extras["outline"] = cache
    return out


class _Trimmed:
    __slots__ = ("end", "start")

    def __init__(self, start: int, end: int) -> None:
        self.start, self.end = start, end


def _trim(text: str, span: Any) -> _Trimmed:
    end = span.end
    while end > span.start and text[end - 1].isspace():
        end -= 1
    return _Trimmed(span.start, end)


def _matches(query: str, name: str) -> bool:
    """Case-insensitive subsequence match (`gans` matches `GenerateAnswer`)."""
    if not query:
        return True
    it = iter(name.lower())
    return all(ch in it for ch in query.lower())


def workspace_symbols(
    session: Session, query: str, *, limit: int = 500
) -> list[types.SymbolInformation]:
    out: list[types.SymbolInformation] = []
    for path in session.workspace_files():
        pf = session.parsed(path)
        if pf is None:
            continue
        codec = session.codec_for(path, pf.source.text)
        if codec is None:
            continue
        for decl in pf.decls:
            if isinstance(decl, ast.ImportDecl):
                continue
            name, sel, detail = _name(decl)
            if not _matches(query, name):
                continue
            out.append(
                types.SymbolInformation(
                    name=name,
                    kind=_KINDS.get(type(decl), SK.Variable),
                    location=types.Location(
                        uri=uri_of(path), range=codec.range(sel.start, sel.end)
                    ),
                    container_name=detail or None,
                )
            )
            if len(out) >= limit:
                return out
    return out
