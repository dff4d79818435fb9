"""Quick fixes: every diagnostic that carries a fix (a did-you-mean replacement, a keyword
for a positional argument...) becomes a code action applying its edits."""

from __future__ import annotations

from lsprotocol import types

from dsx.lsp.diagnostics import to_lsp
from dsx.lsp.state import Document, Session, uri_of

__all__ = ["code_actions"]


def code_actions(session: Session, doc: Document, rng: types.Range) -> list[types.CodeAction]:
    analysis = session.analyze(doc)
    codec = doc.codec(session.encoding)
    start, end = codec.to_offsets(rng)
    out = []
    for diag in analysis.diagnostics:
        if diag.fix is None or diag.span.file != doc.path:
            continue
        if diag.span.end < start or diag.span.start > end:
            continue
        changes: dict[str, list[types.TextEdit]] = {}
        for edit in diag.fix.edits:
            source = analysis.source(edit.span.file)
            edit_codec = session.codec_for(edit.span.file, source.text if source else None)
            if edit_codec is None:
                continue
            changes.setdefault(uri_of(edit.span.file), []).append(
                types.TextEdit(
                    range=edit_codec.range(edit.span.start, edit.span.end),
                    new_text=edit.new_text,
                )
            )
        if not changes:
            continue
        out.append(
            types.CodeAction(
                title=diag.fix.title,
                kind=types.CodeActionKind.QuickFix,
                diagnostics=[to_lsp(session, analysis, diag)],
                edit=types.WorkspaceEdit(changes=changes),
                is_preferred=True,
            )
        )
    return out
