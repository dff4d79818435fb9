"""Go to definition, find references and document highlights — across the workspace's
files, unsaved edits included."""

from __future__ import annotations

import re
from pathlib import Path

from lsprotocol import types

from dsx.compiler import _env
from dsx.grammar import ast
from dsx.lsp import locate, pysource
from dsx.lsp.locate import Occurrence
from dsx.lsp.state import Document, Session, uri_of

__all__ = ["definition", "find_occurrences", "highlights", "references"]


def definition(
    session: Session, doc: Document, position: types.Position
) -> list[types.Location] | None:
    analysis = session.analyze(doc)
    offset = doc.codec(session.encoding).offset(position)
    hit = locate.at(analysis, doc.path, offset)
    if hit is not None:
        span = hit.symbol.span
        location = session.location(span.file, span.start, span.end, analysis.texts.get(span.file))
        return [location] if location is not None else None
    member = pysource.member_at(analysis, doc.path, doc.text, offset)
    if member is not None and member.path is not None:
        d = member.definition
        at = types.Position(line=d.line if d else 0, character=d.column if d else 0)
        return [types.Location(uri=uri_of(str(member.path)), range=types.Range(start=at, end=at))]
    target = _file_target(analysis, doc, offset)
    if target is not None:
        zero = types.Position(line=0, character=0)
        return [types.Location(uri=uri_of(target), range=types.Range(start=zero, end=zero))]
    return None


def _file_target(analysis: object, doc: Document, offset: int) -> str | None:
    """The file an `import "x.dsx"` or `use python "m"` string under the cursor names."""
    pf = getattr(analysis, "files", {}).get(doc.path)
    if pf is None or doc.path.startswith("<"):
        return None
    base = Path(doc.path).parent
    for decl in pf.decls:
        if isinstance(decl, ast.ImportDecl) and _inside(decl.path.span, offset):
            path = (base / decl.path.value).resolve()
            return str(path) if path.is_file() else None
        if isinstance(decl, ast.UseDecl) and _inside(decl.module.span, offset):
            found, _ = _env.python_module_names(decl.module.value, base)
            return str(found) if found is not None else None
    return None


def _inside(span: object, offset: int) -> bool:
    return span.start <= offset <= span.end  # type: ignore[attr-defined]


def find_occurrences(
    session: Session, doc: Document, target: tuple[str, str, int], name: str
) -> list[Occurrence]:
    """Every occurrence of the symbol ``target`` in the workspace: the document's own unit,
    then every workspace file that mentions ``name`` (each analysed as its own root)."""
    seen: dict[tuple[str, int, int], Occurrence] = {}
    analyses = [session.analyze(doc)]
    word = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])")
    for path in session.workspace_files():
        if path == doc.path:
            continue
        text = session.read(path)
        if text is None or not word.search(text):
            continue
        try:
            other = session.analysis_of_path(path)
        except Exception:  # one broken file must not stop a workspace search
            session.log(f"dsx: could not analyse {path} for references")
            continue
        if other is not None:
            analyses.append(other)
    for analysis in analyses:
        for occ in locate.occurrences(analysis, target):
            seen.setdefault((occ.path, occ.start, occ.end), occ)
    return sorted(seen.values(), key=lambda o: (o.path != doc.path, o.path, o.start))


def references(
    session: Session, doc: Document, position: types.Position, *, include_declaration: bool
) -> list[types.Location]:
    analysis = session.analyze(doc)
    offset = doc.codec(session.encoding).offset(position)
    hit = locate.at(analysis, doc.path, offset)
    if hit is None:
        return []
    out = []
    for occ in find_occurrences(session, doc, locate.identity(hit.symbol), hit.symbol.name):
        if occ.is_definition and not include_declaration:
            continue
        location = session.location(occ.path, occ.start, occ.end)
        if location is not None:
            out.append(location)
    return out


def highlights(
    session: Session, doc: Document, position: types.Position
) -> list[types.DocumentHighlight] | None:
    analysis = session.analyze(doc)
    codec = doc.codec(session.encoding)
    hit = locate.at(analysis, doc.path, codec.offset(position))
    if hit is None:
        return None
    out = []
    for occ in locate.occurrences(analysis, locate.identity(hit.symbol)):
        if occ.path != doc.path:
            continue
        out.append(
            types.DocumentHighlight(
                range=codec.range(occ.start, occ.end),
                kind=types.DocumentHighlightKind.Write
                if occ.is_definition
                else types.DocumentHighlightKind.Read,
            )
        )
    return out
