"""Rename: signatures, fields, types, enums, modules, members, parameters, locals,
programs, data, metrics — the definition and every reference in the workspace. Invalid
names (not an identifier, a literal, a clash with a name in the same scope, or a rename
that would introduce an error) are refused with a message."""

from __future__ import annotations

import re

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from dsx.compiler import _env
from dsx.compiler.analysis import Analysis, analyze_source, check_variant
from dsx.compiler.symbols import Symbol
from dsx.grammar import lexspec
from dsx.lsp import locate
from dsx.lsp.navigation import find_occurrences
from dsx.lsp.state import Document, Session, uri_of

__all__ = ["RenameError", "prepare_rename", "rename"]

RENAMABLE = frozenset(
    {
        "signature",
        "field",
        "type",
        "enum",
        "record_field",
        "enum_member",
        "module",
        "submodule",
        "param",
        "local",
        "program",
        "data",
        "metric",
        "python",
        "lm",
        "retriever",
    }
)
_IDENT = re.compile(rf"{lexspec.NAME}\Z")
_LITERALS = frozenset({"true", "false", "none"})
_TYPE_NAMES = frozenset({*_env.PRIMITIVE_TYPES, *_env.GENERIC_TYPES})


class RenameError(JsonRpcInvalidParams):
    """A refused rename; the message is shown to the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def prepare_rename(
    session: Session, doc: Document, position: types.Position
) -> types.PrepareRenamePlaceholder | None:
    analysis = session.analyze(doc)
    codec = doc.codec(session.encoding)
    hit = locate.at(analysis, doc.path, codec.offset(position))
    if hit is None or hit.symbol.kind not in RENAMABLE:
        return None
    return types.PrepareRenamePlaceholder(
        range=codec.range(hit.start, hit.end), placeholder=hit.symbol.name
    )


def rename(
    session: Session, doc: Document, position: types.Position, new_name: str
) -> types.WorkspaceEdit | None:
    analysis = session.analyze(doc)
    codec = doc.codec(session.encoding)
    hit = locate.at(analysis, doc.path, codec.offset(position))
    if hit is None:
        raise RenameError("nothing to rename here: place the cursor on a declared name")
    sym = hit.symbol
    if sym.kind not in RENAMABLE:
        raise RenameError(f"{_env.a(sym.kind)} cannot be renamed")
    if new_name == sym.name:
        return types.WorkspaceEdit(changes={})
    problem = check_name(analysis, sym, new_name)
    if problem:
        raise RenameError(problem)
    occurrences = find_occurrences(session, doc, locate.identity(sym), sym.name)
    changes: dict[str, list[types.TextEdit]] = {}
    spans: dict[str, list[tuple[int, int]]] = {}
    for occ in occurrences:
        text = session.read(occ.path)
        if text is None or text[occ.start : occ.end] != sym.name:
            continue  # the file changed under us, or a span that is not the bare name
        codec_other = session.codec_for(occ.path)
        if codec_other is None:
            continue
        changes.setdefault(uri_of(occ.path), []).append(
            types.TextEdit(range=codec_other.range(occ.start, occ.end), new_text=new_name)
        )
        spans.setdefault(occ.path, []).append((occ.start, occ.end))
    _check_result(session, doc, analysis, spans, new_name)
    return types.WorkspaceEdit(changes=changes)


def check_name(analysis: Analysis, sym: Symbol, new_name: str) -> str | None:
    """Why ``sym`` cannot be called ``new_name`` (``None`` when it can)."""
    if not _IDENT.match(new_name):
        return f"`{new_name}` is not a valid name: use letters, digits and `_`, not starting with a digit"
    if new_name in _LITERALS:
        return f"`{new_name}` is a literal value, not a name"
    model = analysis.model
    if model is None:
        return None
    if sym.container is None:  # a top-level declaration
        existing = model.declaration(new_name)
        if existing is not None:
            return f"`{new_name}` is already declared ({_env.a(existing.kind)})"
        if sym.kind == "module" and new_name in _env.KINDS:
            return f"`{new_name}` is a built-in module kind"
        if sym.kind in ("type", "enum") and new_name in _TYPE_NAMES:
            return f"`{new_name}` is a built-in type"
        return None
    siblings = {
        s.name
        for s in model.symbols.values()
        if s.container == sym.container and s.key != sym.key and _same_namespace(s, sym)
    }
    if new_name in siblings:
        return f"`{sym.container}` already has a `{new_name}`"
    if sym.kind in ("submodule", "param", "local"):
        scope = model.scope(sym.container)
        if new_name in scope and new_name not in (sym.name,):
            kind = scope[new_name].kind
            return f"`{new_name}` is already {_env.a(kind)} name in `{sym.container}`"
    return None


def _same_namespace(a: Symbol, b: Symbol) -> bool:
    """Fields share a namespace with fields; members, parameters and locals with each other."""
    module_names = {"submodule", "param", "local"}
    if a.kind in module_names and b.kind in module_names:
        return True
    return a.kind == b.kind


def _check_result(
    session: Session,
    doc: Document,
    analysis: Analysis,
    spans: dict[str, list[tuple[int, int]]],
    new_name: str,
) -> None:
    """Refuse a rename that would make the document's unit report new errors."""
    if not spans:
        return
    texts = session.overlays()
    for path, edits in spans.items():
        text = session.read(path)
        if text is None:
            continue
        for start, end in sorted(edits, reverse=True):
            text = text[:start] + new_name + text[end:]
        texts[path] = text
    texts.setdefault(doc.path, doc.text)
    if set(spans) <= {analysis.root}:
        # Only what the rename touches (and what depends on it) is checked again, on a copy
        # of the live analysis's state, which stays as it is.
        after = check_variant(analysis, texts)
    else:
        # Another file changes too: a whole check (the trial check of a variant missed a
        # declaration renamed in an imported file after edits to the importer).
        root_text = texts.pop(analysis.root, analysis.texts.get(analysis.root, ""))
        after = analyze_source(root_text, analysis.root, overlays=texts)
    before_codes = _error_counts(analysis)
    for diag in after.errors:
        key = (diag.code, diag.span.file)
        if before_codes.get(key, 0) <= 0:
            raise RenameError(f"renaming to `{new_name}` would cause an error: {diag.message}")
        before_codes[key] -= 1


def _error_counts(analysis: Analysis) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for diag in analysis.errors:
        key = (diag.code, diag.span.file)
        counts[key] = counts.get(key, 0) + 1
    return counts
