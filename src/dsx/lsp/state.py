"""The server's state: open documents, their analyses, and the workspace's other files.

Every feature reads through a :class:`Session`. An open document keeps its text, its block
caches and its last :class:`~dsx.compiler.analysis.Analysis`; re-analysing after an edit
passes both back to the front end, so only the changed top-level blocks are re-parsed and
(for edits inside ``forward`` bodies and tests) re-checked. Unsaved text of every open
document is an overlay for the others, so imports see what the editor shows.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lsprotocol import types
from pygls import uris

from dsx.compiler.analysis import Analysis, analyze_source
from dsx.grammar.parser import BlockCache, ParsedFile, parse
from dsx.lsp.codec import Encoding, PositionCodec

__all__ = ["Document", "Session"]

log = logging.getLogger("dsx.lsp")

#: Directories never searched for workspace ``.dsx`` files.
SKIP_DIRS = frozenset(
    {".git", ".hg", ".svn", "node_modules", "__pycache__", "build", "dist", ".venv", "venv"}
)
#: At most this many workspace files take part in cross-file features.
MAX_WORKSPACE_FILES = 5000


def path_of(uri: str) -> str:
    """The analysis path of ``uri``: a resolved file path, or ``<uri>`` for other schemes."""
    if uri.startswith("file:"):
        fs = uris.to_fs_path(uri)
        if fs:
            try:
                return str(Path(fs).resolve())
            except (OSError, ValueError):
                return fs
    return f"<{uri}>"


def uri_of(path: str) -> str:
    if path.startswith("<") and path.endswith(">"):
        return path[1:-1]
    return uris.from_fs_path(path) or path


@dataclass(eq=False)
class Document:
    """An open document."""

    uri: str
    path: str
    text: str
    version: int | None
    revision: int = 0  # bumped on every change (LSP versions may be missing)
    caches: dict[str, BlockCache] = field(default_factory=dict)
    analysis: Analysis | None = None
    analysis_key: tuple[object, ...] | None = None
    force_full: bool = False  # the next analysis must not reuse the previous one
    extras: dict[str, object] = field(default_factory=dict)  # per-feature caches
    _codec: PositionCodec | None = None

    def codec(self, encoding: Encoding) -> PositionCodec:
        if self._codec is None or self._codec.text is not self.text:
            self._codec = PositionCodec(self.text, encoding)
        return self._codec


class Session:
    """Documents, analyses and workspace files, independent of the JSON-RPC connection
    (the benchmark and unit tests drive it directly)."""

    def __init__(
        self,
        *,
        encoding: Encoding = "utf-16",
        log_message: Callable[[str, types.MessageType], None] | None = None,
        freeze_gc: bool = False,
    ) -> None:
        self.encoding: Encoding = encoding
        self.freeze_gc = freeze_gc  # process-wide: for the server process, not a library user
        self.documents: dict[str, Document] = {}
        self.roots: list[str] = []
        self._by_path: dict[str, Document] = {}
        self._log_message = log_message
        self._workspace_files: list[str] | None = None
        self._closed: dict[str, tuple[tuple[object, ...], Analysis]] = {}
        self._parsed: dict[str, tuple[tuple[object, ...], ParsedFile, BlockCache]] = {}
        self._codecs: dict[str, PositionCodec] = {}
        #: Per importing file: ``(its stamp, names of the imported file it uses)``.
        self.importer_uses: dict[str, tuple[object, frozenset[str]]] = {}

    # ---- logging ----------------------------------------------------------------------
    def log(self, message: str, kind: types.MessageType = types.MessageType.Log) -> None:
        log.info(message)
        if self._log_message is not None:
            try:
                self._log_message(message, kind)
            except Exception:  # the connection may be gone; logging must never fail
                log.exception("could not send a log message")

    # ---- documents ----------------------------------------------------------------------
    def open(self, uri: str, text: str, version: int | None = None) -> Document:
        doc = Document(uri, path_of(uri), text, version)
        self.documents[uri] = doc
        self._by_path[doc.path] = doc
        self._touch(doc.path)
        return doc

    def transient(self, uri: str) -> Document | None:
        """A document for a request about a file the client has not opened: read from disk,
        not kept (the file stays closed, so it is re-read if it changes)."""
        path = path_of(uri)
        text = self.read(path)
        return None if text is None else Document(uri, path, text, None)

    def change(
        self,
        uri: str,
        changes: list[types.TextDocumentContentChangeEvent],
        version: int | None = None,
    ) -> Document | None:
        doc = self.documents.get(uri)
        if doc is None:
            return None
        text = doc.text
        for change in changes:
            if isinstance(change, types.TextDocumentContentChangePartial):
                codec = PositionCodec(text, self.encoding)
                start, end = codec.to_offsets(change.range)
                text = text[:start] + change.text + text[end:]
            else:
                text = change.text
        doc.text = text
        doc.version = version
        doc.revision += 1
        self._touch(doc.path)
        return doc

    def close(self, uri: str) -> None:
        doc = self.documents.pop(uri, None)
        if doc is None:
            return
        self._by_path.pop(doc.path, None)
        self._touch(doc.path)
        # Documents importing it now read it from disk: their last analysis saw the overlay.
        for other in self.dependents(doc.path):
            other.force_full = True

    def get(self, uri: str) -> Document | None:
        return self.documents.get(uri)

    def revision(self, uri: str) -> int | None:
        """How many changes the open document ``uri`` has had (``None``: not open)."""
        doc = self.documents.get(uri)
        return None if doc is None else doc.revision

    def by_path(self, path: str) -> Document | None:
        return self._by_path.get(path)

    def file_changed_on_disk(self, path: str) -> None:
        """A watched file was created, changed or deleted outside the editor."""
        self._touch(path)
        self._workspace_files = None
        for doc in self.dependents(path):
            doc.force_full = True
            doc.analysis_key = None

    def _touch(self, path: str) -> None:
        self._closed.pop(path, None)
        self._parsed.pop(path, None)
        for key, (_, analysis) in list(self._closed.items()):
            if path in analysis.files:
                del self._closed[key]

    def dependents(self, path: str) -> list[Document]:
        """Open documents other than ``path`` whose analysis includes ``path``."""
        return [
            d
            for d in self.documents.values()
            if d.path != path and d.analysis is not None and path in d.analysis.files
        ]

    # ---- analysis -----------------------------------------------------------------------
    def overlays(self, *, exclude: str | None = None) -> dict[str, str]:
        return {p: d.text for p, d in self._by_path.items() if p != exclude}

    def _key(self, doc: Document) -> tuple[object, ...]:
        others: list[object] = []
        if doc.analysis is not None:
            for path in doc.analysis.files:
                if path != doc.path:
                    other = self._by_path.get(path)
                    others.append((path, other.revision if other else None))
        return (doc.revision, *others)

    def is_fresh(self, doc: Document) -> bool:
        return doc.analysis is not None and doc.analysis_key == self._key(doc)

    def analyze(self, doc: Document) -> Analysis:
        """The analysis of ``doc``'s current text, re-using the last one where possible."""
        if doc.analysis is not None and not doc.force_full and doc.analysis_key == self._key(doc):
            return doc.analysis
        previous = None if doc.force_full else doc.analysis
        if doc.force_full:
            doc.caches = {}
        doc.force_full = False
        try:
            analysis = analyze_source(
                doc.text,
                doc.path,
                overlays=self.overlays(exclude=doc.path),
                caches=doc.caches,
                previous=previous,
            )
        except Exception:
            # An incremental re-check mutates the previous analysis in place: after a
            # failure nothing of it can be trusted, so the next run starts afresh.
            doc.analysis, doc.analysis_key, doc.caches = None, None, {}
            raise
        doc.analysis = analysis
        doc.analysis_key = self._key(doc)
        if self.freeze_gc and not analysis.incremental:
            # A full check leaves ~30 objects per line alive for the editing session. Freezing
            # them keeps the cyclic GC from re-scanning them on every later keystroke (a
            # full collection costs ~50 ms at 5,000 lines); `collect_garbage` runs when idle.
            gc.freeze()
        return analysis

    def collect_garbage(self) -> None:
        """Collect reference cycles among everything allocated so far (idle time only)."""
        if not self.freeze_gc:
            gc.collect()
            return
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    def latest(self, doc: Document) -> Analysis:
        """The last analysis of ``doc`` even if the text changed since (completion uses the
        current text for what is local and this for what is declared), else a new one."""
        if doc.analysis is not None:
            return doc.analysis
        return self.analyze(doc)

    def analysis_of_path(self, path: str) -> Analysis | None:
        """The analysis with ``path`` as its root: the open document's, or a cached one for
        a file on disk (re-done when it or anything it imports changed)."""
        doc = self._by_path.get(path)
        if doc is not None:
            return self.analyze(doc)
        cached = self._closed.get(path)
        if cached is not None and cached[0] == self._fingerprint(cached[1]):
            return cached[1]
        text = self.read(path)
        if text is None:
            return None
        analysis = analyze_source(text, path, overlays=self.overlays(exclude=path))
        self._closed[path] = (self._fingerprint(analysis), analysis)
        return analysis

    def _fingerprint(self, analysis: Analysis) -> tuple[object, ...]:
        out: list[object] = []
        for path in analysis.files:
            doc = self._by_path.get(path)
            if doc is not None:
                out.append((path, "open", doc.revision))
            else:
                try:
                    st = os.stat(path)
                    out.append((path, st.st_mtime_ns, st.st_size))
                except OSError:
                    out.append((path, None))
        return tuple(out)

    def read(self, path: str) -> str | None:
        doc = self._by_path.get(path)
        if doc is not None:
            return doc.text
        if path.startswith("<"):
            return None
        try:
            return Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def stamp(self, path: str) -> tuple[object, ...] | None:
        """What changes when ``path``'s text does: the open revision, else size and time."""
        doc = self._by_path.get(path)
        if doc is not None:
            return ("open", doc.revision)
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def parsed(self, path: str) -> ParsedFile | None:
        """``path`` parsed (no checks): what workspace symbols need."""
        doc = self._by_path.get(path)
        stamp: tuple[object, ...]
        if doc is not None:
            stamp = ("open", doc.revision)
        else:
            try:
                st = os.stat(path)
            except OSError:
                return None
            stamp = (st.st_mtime_ns, st.st_size)
        cached = self._parsed.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        text = self.read(path)
        if text is None:
            return None
        cache = cached[2] if cached is not None else BlockCache()
        pf = parse(text, path, cache=cache)
        self._parsed[path] = (stamp, pf, cache)
        return pf

    # ---- positions ----------------------------------------------------------------------
    def codec_for(self, path: str, text: str | None = None) -> PositionCodec | None:
        """A codec for ``path``'s text (``text`` when given: the text an analysis saw)."""
        doc = self._by_path.get(path)
        if doc is not None and (text is None or text is doc.text or text == doc.text):
            return doc.codec(self.encoding)
        if text is None:
            text = self.read(path)
            if text is None:
                return None
        codec = self._codecs.get(path)
        if codec is None or codec.text is not text:
            codec = self._codecs[path] = PositionCodec(text, self.encoding)
        return codec

    def location(
        self, path: str, start: int, end: int, text: str | None = None
    ) -> types.Location | None:
        codec = self.codec_for(path, text)
        if codec is None:
            return None
        return types.Location(uri=uri_of(path), range=codec.range(start, end))

    # ---- workspace ----------------------------------------------------------------------
    def set_roots(self, roots: list[str]) -> None:
        self.roots = [r for r in roots if r]
        self._workspace_files = None

    def workspace_files(self) -> list[str]:
        """Every ``.dsx`` file under the workspace folders, plus the open documents."""
        if self._workspace_files is None:
            found: list[str] = []
            for root in self.roots:
                found.extend(_scan(root, MAX_WORKSPACE_FILES - len(found)))
                if len(found) >= MAX_WORKSPACE_FILES:
                    self.log(
                        f"dsx: more than {MAX_WORKSPACE_FILES} .dsx files in the workspace; "
                        "cross-file features see the first ones only",
                        types.MessageType.Warning,
                    )
                    break
            self._workspace_files = found
        seen = dict.fromkeys(self._workspace_files)
        for path in self._by_path:
            seen.setdefault(path)
        return list(seen)


def _scan(root: str, limit: int) -> Iterator[str]:
    count = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".dsx"):
                try:
                    yield str(Path(dirpath, name).resolve())
                except (OSError, ValueError):
                    continue
                count += 1
                if count >= limit:
                    return
