"""Diagnostics: dsx diagnostics as LSP diagnostics, for publishing (push) and for
``textDocument/diagnostic`` (pull)."""

from __future__ import annotations

import hashlib

from lsprotocol import types

from dsx.compiler.analysis import Analysis
from dsx.diagnostics import REGISTRY, Diagnostic, DiagnosticCode
from dsx.lsp.state import Document, Session, uri_of

__all__ = ["document_diagnostics", "pull", "to_lsp"]

_SEVERITY = {
    "error": types.DiagnosticSeverity.Error,
    "warning": types.DiagnosticSeverity.Warning,
    "info": types.DiagnosticSeverity.Information,
}
#: Codes whose span is dead code: editors fade it out.
_UNNECESSARY = frozenset({DiagnosticCode.UNUSED_DECLARATION, DiagnosticCode.UNUSED_VARIABLE})


def to_lsp(session: Session, analysis: Analysis, diag: Diagnostic) -> types.Diagnostic:
    source = analysis.source(diag.span.file)
    codec = session.codec_for(diag.span.file, source.text if source else None)
    assert codec is not None
    related = []
    for rel in diag.related:
        rel_source = analysis.source(rel.span.file)
        location = session.location(
            rel.span.file, rel.span.start, rel.span.end, rel_source.text if rel_source else None
        )
        if location is not None:
            related.append(
                types.DiagnosticRelatedInformation(location=location, message=rel.message)
            )
    code = REGISTRY.get(diag.code)
    message = diag.message
    return types.Diagnostic(
        range=codec.range(diag.span.start, diag.span.end),
        message=message,
        severity=_SEVERITY.get(diag.severity, types.DiagnosticSeverity.Error),
        code=diag.code,
        source="dsx" if code is None else f"dsx({code.name})",
        related_information=related or None,
        tags=[types.DiagnosticTag.Unnecessary] if diag.code in _UNNECESSARY else None,
    )


def document_diagnostics(session: Session, doc: Document) -> list[types.Diagnostic]:
    """The diagnostics of ``doc``'s current text that lie in ``doc`` itself (problems in
    files it imports are reported on those files, with a pointer at the import)."""
    analysis = session.analyze(doc)
    out = []
    imported_errors: dict[str, int] = {}
    unused = [
        d
        for d in analysis.diagnostics
        if d.code == DiagnosticCode.UNUSED_DECLARATION and d.span.file == doc.path
    ]
    used_elsewhere = used_by_importers(session, doc) if unused else set()
    for diag in analysis.diagnostics:
        if diag.span.file == doc.path:
            if (
                diag.code == DiagnosticCode.UNUSED_DECLARATION
                and _name_at(doc, diag) in used_elsewhere
            ):
                continue  # a library's declaration its importers use
            out.append(to_lsp(session, analysis, diag))
        elif diag.is_error:
            imported_errors[diag.span.file] = imported_errors.get(diag.span.file, 0) + 1
    if imported_errors:
        out.extend(_import_notes(session, doc, analysis, imported_errors))
    return out


def _name_at(doc: Document, diag: Diagnostic) -> str:
    return doc.text[diag.span.start : diag.span.end]


def used_by_importers(session: Session, doc: Document) -> set[str]:
    """Names declared in ``doc`` that workspace files importing it use.

    Each importer's answer is kept until the importer itself changes (re-analysing every
    importer on each keystroke in the library would cost a full check each).
    """
    from pathlib import Path

    from dsx.grammar import ast

    if doc.path.startswith("<"):
        return set()
    cache = session.importer_uses
    used: set[str] = set()
    for path in session.workspace_files():
        if path == doc.path:
            continue
        pf = session.parsed(path)
        if pf is None:
            continue
        base = Path(path).parent
        imports = False
        for decl in pf.decls:
            if isinstance(decl, ast.ImportDecl):
                try:
                    imports = imports or str((base / decl.path.value).resolve()) == doc.path
                except (OSError, ValueError):
                    continue
        if not imports:
            continue
        stamp = (session.stamp(path), doc.path)
        entry = cache.get(path)
        if entry is None or entry[0] != stamp:
            try:
                other = session.analysis_of_path(path)
            except Exception:  # one broken importer must not stop diagnostics
                continue
            names: set[str] = set()
            if other is not None:
                for ref in other.references:
                    sym = other.symbols.get(ref.key)
                    if sym is not None and sym.span.file == doc.path and ref.span.file == path:
                        names.add(sym.name)
            entry = cache[path] = (stamp, frozenset(names))
        used |= entry[1]
    return used


def _import_notes(
    session: Session, doc: Document, analysis: Analysis, errors: dict[str, int]
) -> list[types.Diagnostic]:
    """An error in an imported file is shown on the `import` line that brings it in."""
    from pathlib import Path

    from dsx.grammar import ast

    codec = doc.codec(session.encoding)
    out: list[types.Diagnostic] = []
    pf = analysis.files.get(doc.path)
    if pf is None or doc.path.startswith("<"):
        return out
    base = Path(doc.path).parent
    for decl in pf.decls:
        if not isinstance(decl, ast.ImportDecl):
            continue
        try:
            target = str((base / decl.path.value).resolve())
        except (OSError, ValueError):
            continue
        count = errors.get(target)
        if count:
            out.append(
                types.Diagnostic(
                    range=codec.range(decl.path.span.start, decl.path.span.end),
                    message=f"{decl.path.value} has {count} error{'s' if count > 1 else ''}",
                    severity=types.DiagnosticSeverity.Error,
                    source="dsx",
                    related_information=[
                        types.DiagnosticRelatedInformation(
                            location=types.Location(
                                uri=uri_of(target),
                                range=types.Range(
                                    start=types.Position(line=0, character=0),
                                    end=types.Position(line=0, character=0),
                                ),
                            ),
                            message="the imported file",
                        )
                    ],
                )
            )
    return out


def pull(
    session: Session, doc: Document, previous_result_id: str | None
) -> types.RelatedFullDocumentDiagnosticReport | types.RelatedUnchangedDocumentDiagnosticReport:
    """A ``textDocument/diagnostic`` report; ``unchanged`` when nothing changed since the
    client's ``previous_result_id``."""
    items = document_diagnostics(session, doc)
    digest = hashlib.blake2b(
        repr([(d.range, d.message, d.severity, d.code) for d in items]).encode(), digest_size=8
    ).hexdigest()
    if previous_result_id == digest:
        return types.RelatedUnchangedDocumentDiagnosticReport(result_id=digest)
    return types.RelatedFullDocumentDiagnosticReport(items=items, result_id=digest)
