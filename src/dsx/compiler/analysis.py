"""The front-end driver: load a root file and its imports, parse, lower and check.

``analyze_path`` / ``analyze_source`` return an :class:`Analysis` with the IR, every
diagnostic, and its semantic model (:attr:`Analysis.model`, :mod:`dsx.compiler.model`):
the symbols, scopes, types and references that editors and tools query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dsx import ir
from dsx._textfile import TextFileError, read_text
from dsx.compiler.lower import Lowerer
from dsx.compiler.model import SemanticModel
from dsx.compiler.symbols import Reference, Symbol
from dsx.diagnostics import Diagnostic, DiagnosticCode, Origin, Related, SourceFile, Span, make
from dsx.grammar import ast
from dsx.grammar.parser import BlockCache, ParsedFile, parse

__all__ = ["Analysis", "analyze_path", "analyze_source", "check_variant"]


@dataclass(slots=True)
class Analysis:
    root: str
    files: dict[str, ParsedFile]
    unit: ir.Unit
    diagnostics: list[Diagnostic]
    symbols: dict[str, Symbol] = field(default_factory=dict)
    references: list[Reference] = field(default_factory=list)
    lowerer: Lowerer | None = field(default=None, repr=False)
    texts: dict[str, str] = field(default_factory=dict, repr=False)
    incremental: bool = False  # whether this analysis reused the previous one
    _model: SemanticModel | None = field(default=None, repr=False)

    @property
    def model(self) -> SemanticModel | None:
        """The unit's semantic model (``None`` only for an analysis built without
        checking)."""
        if self._model is None and self.lowerer is not None:
            self._model = SemanticModel(self.lowerer)
        return self._model

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def ok(self) -> bool:
        return not self.errors

    def source(self, path: str) -> SourceFile | None:
        pf = self.files.get(path)
        return pf.source if pf else None


def analyze_source(
    text: str,
    path: str = "<string>",
    *,
    overlays: dict[str, str] | None = None,
    caches: dict[str, BlockCache] | None = None,
    previous: Analysis | None = None,
    keep_previous: bool = False,
) -> Analysis:
    """Analyze ``text`` as the file ``path``. ``overlays`` give unsaved text of other files.

    With ``caches`` (block caches per file) and the ``previous`` analysis of the same file,
    an edit re-parses only the changed blocks and re-checks only the changed declarations
    and what depends on them (what an editor needs); ``previous`` is then used up.

    ``keep_previous``: leave ``previous`` as it was, so that it can still be queried (a
    trial check, such as a rename's: renamed top-level declarations are re-checked
    incrementally too).
    """
    texts = dict(overlays or {})
    root = _norm(path)
    texts[root] = text
    if previous is not None and caches is not None:
        quick = _reanalyze(root, texts, caches, previous, keep=keep_previous)
        if quick is not None:
            return quick
    return _analyze(root, texts, caches)


def _reanalyze(
    root: str,
    texts: dict[str, str],
    caches: dict[str, BlockCache],
    prev: Analysis,
    *,
    keep: bool = False,
) -> Analysis | None:
    if prev.root != root or prev.lowerer is None or root not in prev.files:
        return None
    for other, old_text in prev.texts.items():
        if other != root and texts.get(other, old_text) != old_text:
            return None
    pf = parse(texts[root], root, cache=caches.setdefault(root, BlockCache()))
    old_blocks = prev.files[root].blocks
    if len(old_blocks) != len(pf.blocks):
        return None
    changes = [(o.decl, n.decl) for o, n in zip(old_blocks, pf.blocks, strict=True) if o is not n]
    if any(
        o is not n and (o.decl is not None or o.errors) and n.decl is None and not n.errors
        for o, n in zip(old_blocks, pf.blocks, strict=True)
    ):
        # A declaration was deleted (its block is only comments now), or a block that did
        # not parse was: the meaning kept for it while it did not parse goes with it.
        return None
    if any(isinstance(n, ast.ImportDecl) or isinstance(o, ast.ImportDecl) for o, n in changes):
        return None
    lowerer = prev.lowerer.fork() if keep else prev.lowerer
    lowerer.files = [pf if f.source.path == root else f for f in lowerer.files]
    lowerer.collect_broken()
    lowerer.sources[root] = pf.source
    unit = lowerer.relower(changes, renames=keep)
    if unit is None:
        return None
    files = dict(prev.files)
    files[root] = pf
    diagnostics = [d for f in files.values() for d in f.diagnostics] + [
        d for d in lowerer.diagnostics
    ]
    diagnostics.sort(key=lambda d: (d.span.file != root, d.span.file, d.span.start))
    return Analysis(
        root,
        files,
        unit,
        diagnostics,
        lowerer.symbols,
        lowerer.references,
        lowerer,
        dict(texts),
        True,
    )


def check_variant(analysis: Analysis, texts: dict[str, str]) -> Analysis:
    """Check ``analysis``'s unit with the text of some of its files replaced (``texts``:
    path -> new text; others as ``analysis`` read them), leaving ``analysis`` as it was.

    What a rename does before it answers: blocks the edits leave alone are not parsed again
    (``analysis``'s are lent, their offsets restored after), and only the changed
    declarations and what depends on them are checked again, on a copy of ``analysis``'s
    state — a full run when that is not sound (an edited import, another file changed).
    Only the result's diagnostics are meant to be read: its spans in lent blocks point at
    ``analysis``'s text.
    """
    overlays = {p: t for p, t in analysis.texts.items() if p != analysis.root}
    overlays.update(texts)
    root_text = overlays.pop(analysis.root, analysis.texts.get(analysis.root, ""))
    caches: dict[str, BlockCache] = {}
    lent: list[tuple[Origin, int]] = []
    for path, pf in analysis.files.items():
        cache = caches[path] = BlockCache()
        cache.replace(pf.blocks)
        lent.extend((b.span.origin, b.span.origin.offset) for b in pf.blocks)
    try:
        return analyze_source(
            root_text,
            analysis.root,
            overlays=overlays,
            caches=caches,
            previous=analysis,
            keep_previous=True,
        )
    finally:
        for origin, offset in lent:
            origin.offset = offset


def analyze_path(path: str | Path, *, overlays: dict[str, str] | None = None) -> Analysis:
    """Analyze the file at ``path`` (a path that cannot be read is a ``TextFileError``)."""
    try:
        root = _norm(str(path))
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
        raise TextFileError(f"{path}: cannot read the .dsx file: {exc}") from None
    texts = dict(overlays or {})
    if root not in texts:
        texts[root] = read_text(root, what=".dsx file")
    return _analyze(root, texts, None)


def _norm(path: str) -> str:
    if path.startswith("<"):
        return path
    return str(Path(path).resolve())


def _analyze(root: str, texts: dict[str, str], caches: dict[str, BlockCache] | None) -> Analysis:
    # The front end allocates many small objects that all stay alive until it returns;
    # cyclic GC passes in the middle only cost time (the same trick mypy uses).
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        return _analyze_unit(root, texts, caches)
    finally:
        if enabled:
            gc.enable()


def _analyze_unit(
    root: str, texts: dict[str, str], caches: dict[str, BlockCache] | None
) -> Analysis:
    files: dict[str, ParsedFile] = {}
    diagnostics: list[Diagnostic] = []
    order: list[str] = []

    def load(path: str, stack: list[str]) -> None:
        if path in files:
            return
        text = texts.get(path)
        if text is None:
            text = read_text(path, what=".dsx file")
        cache = caches.setdefault(path, BlockCache()) if caches is not None else None
        pf = parse(text, path, cache=cache)
        files[path] = pf
        diagnostics.extend(pf.diagnostics)
        for decl in pf.decls:
            if not isinstance(decl, ast.ImportDecl):
                continue
            target = decl.path.value
            base = Path(path).parent if not path.startswith("<") else Path.cwd()
            try:
                resolved = _norm(str(base / target))
                exists = resolved in texts or Path(resolved).is_file()
            except (OSError, ValueError):
                diagnostics.append(
                    make(
                        DiagnosticCode.IMPORT_NOT_FOUND,
                        f"`{target}` is not a valid file path",
                        decl.path.span,
                    )
                )
                continue
            if not target.endswith(".dsx"):
                diagnostics.append(
                    make(
                        DiagnosticCode.IMPORT_NOT_FOUND,
                        f'imports name .dsx files: `import "{target}"` should end in .dsx',
                        decl.path.span,
                    )
                )
                continue
            if resolved in stack:
                cycle = " -> ".join(
                    Path(p).name for p in [*stack[stack.index(resolved) :], resolved]
                )
                diagnostics.append(
                    make(DiagnosticCode.IMPORT_CYCLE, f"import cycle: {cycle}", decl.path.span)
                )
                continue
            if not exists:
                diagnostics.append(
                    make(
                        DiagnosticCode.IMPORT_NOT_FOUND,
                        f"imported file `{target}` does not exist (looked at {resolved})",
                        decl.path.span,
                    )
                )
                continue
            if resolved not in texts and resolved not in files:
                try:  # an unreadable import is a diagnostic at the import, not a crash
                    texts[resolved] = read_text(resolved, what=".dsx file")
                except TextFileError as exc:
                    diagnostics.append(
                        make(DiagnosticCode.IMPORT_NOT_FOUND, str(exc), decl.path.span)
                    )
                    continue
            load(resolved, [*stack, resolved])
        order.append(path)

    load(root, [root])
    ordered = [files[p] for p in order]
    lowerer = Lowerer(ordered, root)
    unit = lowerer.run()
    diagnostics.extend(lowerer.diagnostics)
    diagnostics.sort(key=lambda d: (d.span.file != root, d.span.file, d.span.start))
    texts_used = {p: files[p].source.text for p in files}
    return Analysis(
        root, files, unit, diagnostics, lowerer.symbols, lowerer.references, lowerer, texts_used
    )


__all__ += ["Related", "Span"]
