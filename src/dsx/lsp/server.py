"""The dsx language server: pygls wiring of the feature modules over a :class:`Session`.

Each handler is thin: it finds the document and calls one feature module. Every handler
runs inside :func:`guarded`, so an internal error in one feature is logged (to the
client's log and stderr) and answered with an empty result; the session goes on.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from lsprotocol import types
from pygls.capabilities import ServerCapabilitiesBuilder
from pygls.exceptions import JsonRpcContentModified, JsonRpcInvalidParams, JsonRpcServerError
from pygls.io_ import StdoutWriter, run_async
from pygls.lsp.server import LanguageServer

from dsx._version import __version__
from dsx.lsp import (
    code_actions,
    code_lens,
    completion,
    diagnostics,
    folding,
    formatting,
    hover,
    inlay_hints,
    navigation,
    outline,
    preview,
    rename,
    selection,
    semantic_tokens,
    signature_help,
)
from dsx.lsp.codec import Encoding
from dsx.lsp.protocol import DsxProtocol, is_parse_error
from dsx.lsp.scheduler import ReadAhead, Scheduler
from dsx.lsp.state import Document, Session, path_of

__all__ = ["DsxLanguageServer", "create_server"]

log = logging.getLogger("dsx.lsp")

#: Comma-separated feature names that raise on purpose (for testing the error guard).
FAULT_ENV = "DSX_LSP_FAULT"

DiagnosticMode = Literal["auto", "push", "pull"]

#: The error code of a refused ``dsx/renderPrompt`` (the message says why).
PREVIEW_REFUSED = -32099

#: How many arrival revisions are kept (only queued requests look theirs up).
MAX_ARRIVALS = 256

#: Seconds without edits after which the server collects garbage.
IDLE_SECONDS = 5.0


@dataclass
class Options:
    """Client-chosen options (``initializationOptions``)."""

    diagnostics_delay: float = 0.15  # seconds after the last edit
    diagnostic_mode: DiagnosticMode = "auto"
    snippets: bool = True  # offer declaration templates as completion snippets

    @classmethod
    def parse(cls, raw: Any) -> Options:
        opts = cls()
        if not isinstance(raw, dict):
            return opts
        delay = raw.get("diagnosticsDelay")
        if isinstance(delay, int | float) and not isinstance(delay, bool) and 0 <= delay <= 10_000:
            opts.diagnostics_delay = delay / 1000
        mode = raw.get("diagnosticMode")
        if mode in ("auto", "push", "pull"):
            opts.diagnostic_mode = mode
        if isinstance(raw.get("snippets"), bool):
            opts.snippets = raw["snippets"]
        return opts


class DsxLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("dsx", __version__, protocol_cls=DsxProtocol)
        self.session = Session(log_message=self._log_to_client, freeze_gc=True)
        self.options = Options()
        self.push_diagnostics = True
        self.snippet_support = False
        self.refresh_support = False
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._refresh_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self.faults = {f.strip() for f in os.environ.get(FAULT_ENV, "").split(",") if f.strip()}
        self.scheduler = Scheduler()
        self.protocol.on_request = self._arrived
        #: The revision of a request's document when it was read, by ``id(params)``.
        self._arrivals: dict[int, int | None] = {}

    protocol: DsxProtocol

    def _start_io_async(self, stdin: Any = None, stdout: Any = None) -> None:
        """pygls' stdio loop, reading through :class:`ReadAhead` (see ``scheduler.py``)."""
        self._stop_event = threading.Event()
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))

        async def serve() -> None:
            reader = ReadAhead(stdin or sys.stdin.buffer, asyncio.get_running_loop())
            self.scheduler.reader = reader
            assert self._stop_event is not None
            await run_async(
                stop_event=self._stop_event,
                reader=reader,
                protocol=self.protocol,
                logger=logging.getLogger("pygls.server"),
                error_handler=self.report_server_error,
            )

        try:
            asyncio.run(serve())
        except BrokenPipeError:
            log.error("dsx lsp: the connection to the client is lost; shutting down")
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.shutdown()

    @property
    def exit_code(self) -> int:
        """The process's exit status: 1 after ``exit`` without ``shutdown`` (else 0)."""
        return self.protocol.exit_code or 0

    def _arrived(self, params: Any) -> None:
        uri = _uri_of(params)
        if uri is not None:
            self._arrivals[id(params)] = self.session.revision(uri)
            while len(self._arrivals) > MAX_ARRIVALS:  # requests answered at once linger
                del self._arrivals[next(iter(self._arrivals))]

    def revision_at_arrival(self, params: Any) -> int | None:
        """The revision of the request's document when the request was read."""
        uri = _uri_of(params)
        revision = self._arrivals.pop(id(params), None)
        if revision is None and uri is not None:
            revision = self.session.revision(uri)
        return revision

    def report_server_error(self, error: Exception, source: Any) -> None:
        # The reader loop's hook for a body it could not read: answer -32700.
        if isinstance(error, JsonRpcContentModified):
            return  # a stale request, answered as such: not a fault
        if is_parse_error(error):
            self.protocol.reply_parse_error(error)
            return
        super().report_server_error(error, source)

    def _log_to_client(self, message: str, kind: types.MessageType) -> None:
        self.window_log_message(types.LogMessageParams(type=kind, message=message))

    def report_internal(self, feature: str, exc: BaseException) -> None:
        text = "".join(traceback.format_exception(exc))
        log.error("dsx lsp: internal error in %s\n%s", feature, text)
        self.session.log(
            f"dsx: internal error in {feature} (the server goes on): {exc!r}\n{text}",
            types.MessageType.Error,
        )

    # ---- diagnostics ------------------------------------------------------------------
    def schedule_diagnostics(self, doc: Document, *, delay: float | None = None) -> None:
        if not self.push_diagnostics:
            return
        old = self._timers.pop(doc.uri, None)
        if old is not None:
            old.cancel()
        wait = self.options.diagnostics_delay if delay is None else delay
        loop = asyncio.get_event_loop()
        self._timers[doc.uri] = loop.call_later(wait, self.publish_diagnostics, doc.uri)

    def publish_diagnostics(self, uri: str) -> None:
        self._timers.pop(uri, None)
        doc = self.session.get(uri)
        if doc is None:
            return
        try:
            self._fault("diagnostics")
            items = diagnostics.document_diagnostics(self.session, doc)
        except Exception as exc:
            self.report_internal("diagnostics", exc)
            return
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=items, version=doc.version)
        )

    def request_refresh(self) -> None:
        """Pull mode: ask the client to pull again (documents importing a changed one)."""
        if self.push_diagnostics or not self.refresh_support:
            return
        if self._refresh_timer is not None:
            self._refresh_timer.cancel()
        loop = asyncio.get_event_loop()

        def send() -> None:
            self._refresh_timer = None
            try:
                self.workspace_diagnostic_refresh(None)
            except Exception as exc:
                self.report_internal("diagnostic refresh", exc)

        self._refresh_timer = loop.call_later(self.options.diagnostics_delay, send)

    def schedule_idle(self) -> None:
        """Collect garbage once the user has stopped typing for a while."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        loop = asyncio.get_event_loop()

        def idle() -> None:
            self._idle_timer = None
            try:
                self.session.collect_garbage()
            except Exception as exc:
                self.report_internal("garbage collection", exc)

        self._idle_timer = loop.call_later(IDLE_SECONDS, idle)

    def after_change(self, doc: Document, *, immediate: bool = False) -> None:
        self.schedule_idle()
        self.schedule_diagnostics(doc, delay=0 if immediate else None)
        # The files it imports: whether their declarations are "never used" may change.
        for path in doc.analysis.files if doc.analysis is not None else ():
            imported = self.session.by_path(path)
            if imported is not None and imported is not doc:
                self.schedule_diagnostics(imported)
        dependents = self.session.dependents(doc.path)
        for other in dependents:
            self.schedule_diagnostics(other)
        if dependents:
            self.request_refresh()

    def _fault(self, feature: str) -> None:
        if feature in self.faults:
            raise RuntimeError(f"injected fault in {feature} ({FAULT_ENV})")

    def shutdown_timers(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._refresh_timer is not None:
            self._refresh_timer.cancel()
        if self._idle_timer is not None:
            self._idle_timer.cancel()


F = TypeVar("F", bound=Callable[..., Any])


def guarded(feature: str, default: Any = None) -> Callable[[F], F]:
    """Run a handler so that an internal error is logged and answered with ``default``.

    A :class:`~dsx.lsp.rename.RenameError` (a refused rename) is not internal: it reaches
    the client as an error response carrying its message.
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(ls: DsxLanguageServer, params: Any) -> Any:
            try:
                ls._fault(feature)
                return fn(ls, params)
            except rename.RenameError:
                raise
            except RecursionError as exc:  # deeply nested input: same treatment
                ls.report_internal(feature, exc)
                return default
            except Exception as exc:
                ls.report_internal(feature, exc)
                return default

        return wrapper  # type: ignore[return-value]

    return decorate


def queued(feature: str, default: Any = None, *, stale: bool = True) -> Callable[[F], F]:
    """Like :func:`guarded`, for an expensive request: it runs once no newer message is
    waiting (``scheduler.py``), can be cancelled while it waits, and, with ``stale``, is
    answered ContentModified when its document changed meanwhile."""

    def decorate(fn: F) -> F:
        run = guarded(feature, default)(fn)

        @functools.wraps(fn)
        async def wrapper(ls: DsxLanguageServer, params: Any) -> Any:
            uri = _uri_of(params) if stale else None
            revision = ls.revision_at_arrival(params)
            await ls.scheduler.turn()
            if uri is not None and ls.session.revision(uri) != revision:
                raise JsonRpcContentModified(
                    message=f"{uri} changed before {feature} ran; ask again"
                )
            return run(ls, params)

        return wrapper  # type: ignore[return-value]

    return decorate


def _uri_of(params: Any) -> str | None:
    td = getattr(params, "text_document", None)
    uri = getattr(td, "uri", None)
    return uri if isinstance(uri, str) else None


def _doc(ls: DsxLanguageServer, uri: str) -> Document | None:
    doc = ls.session.get(uri)
    if doc is None:
        # A request for a document the client never opened: read it from disk.
        doc = ls.session.transient(uri)
    return doc


class _QuietRefusals(logging.Filter):
    """pygls logs every error response with a traceback; invalid params, a refused rename or
    preview are answers."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        refused_preview = isinstance(exc, JsonRpcServerError) and exc.code == PREVIEW_REFUSED
        # Invalid params (a refused rename is one) and stale requests are answers to the
        # client, not faults.
        answer = isinstance(exc, JsonRpcInvalidParams | JsonRpcContentModified)
        return not answer and not refused_preview


def create_server() -> DsxLanguageServer:
    """A server with every feature registered (start it with ``start_io``/``start_tcp``)."""
    server = DsxLanguageServer()
    rpc_log = logging.getLogger("pygls.protocol.json_rpc")
    if not any(isinstance(f, _QuietRefusals) for f in rpc_log.filters):
        rpc_log.addFilter(_QuietRefusals())

    @server.feature(types.INITIALIZE)
    @guarded("initialize")
    def initialize(ls: DsxLanguageServer, params: types.InitializeParams) -> None:
        ls.options = Options.parse(params.initialization_options)
        caps = params.capabilities
        encoding = ServerCapabilitiesBuilder.choose_position_encoding(caps)
        ls.session.encoding = _encoding(str(encoding))
        roots = [path_of(f.uri) for f in params.workspace_folders or []]
        if not roots and params.root_uri:
            roots = [path_of(params.root_uri)]
        elif not roots and params.root_path:
            roots = [params.root_path]
        ls.session.set_roots([r for r in roots if not r.startswith("<")])
        td = caps.text_document
        ls.snippet_support = bool(
            td
            and td.completion
            and td.completion.completion_item
            and td.completion.completion_item.snippet_support
        )
        client_pulls = bool(td and td.diagnostic is not None)
        mode = ls.options.diagnostic_mode
        pull = mode == "pull" or (mode == "auto" and client_pulls)
        ls.push_diagnostics = not pull
        ws = caps.workspace
        ls.refresh_support = bool(ws and ws.diagnostics and ws.diagnostics.refresh_support)
        if pull:
            _register_pull(ls)

    @server.feature(types.INITIALIZED)
    @guarded("initialized")
    def initialized(ls: DsxLanguageServer, params: types.InitializedParams) -> None:
        caps = ls.client_capabilities.workspace
        watched = caps.did_change_watched_files if caps else None
        if watched is not None and watched.dynamic_registration:
            ls.client_register_capability(
                types.RegistrationParams(
                    registrations=[
                        types.Registration(
                            id="dsx-watch",
                            method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                            register_options=types.DidChangeWatchedFilesRegistrationOptions(
                                watchers=[types.FileSystemWatcher(glob_pattern="**/*.dsx")]
                            ),
                        )
                    ]
                )
            )

    @server.feature(types.SHUTDOWN)
    @guarded("shutdown")
    def shutdown(ls: DsxLanguageServer, params: Any) -> None:
        ls.shutdown_timers()

    # ---- text synchronisation ---------------------------------------------------------
    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    @guarded("didOpen")
    def did_open(ls: DsxLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        td = params.text_document
        doc = ls.session.open(td.uri, td.text, td.version)
        ls.after_change(doc, immediate=True)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    @guarded("didChange")
    def did_change(ls: DsxLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        td = params.text_document
        doc = ls.session.change(td.uri, list(params.content_changes), td.version)
        if doc is None:
            return
        ls.after_change(doc)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    @guarded("didClose")
    def did_close(ls: DsxLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        timer = ls._timers.pop(uri, None)
        if timer is not None:
            timer.cancel()
        doc = ls.session.get(uri)
        dependents = ls.session.dependents(doc.path) if doc is not None else []
        ls.session.close(uri)
        if ls.push_diagnostics:
            ls.text_document_publish_diagnostics(
                types.PublishDiagnosticsParams(uri=uri, diagnostics=[])
            )
        for other in dependents:
            ls.schedule_diagnostics(other)
        if dependents:
            ls.request_refresh()

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    @guarded("didChangeWatchedFiles")
    def did_change_watched(
        ls: DsxLanguageServer, params: types.DidChangeWatchedFilesParams
    ) -> None:
        touched = False
        for change in params.changes:
            path = path_of(change.uri)
            if ls.session.by_path(path) is not None:
                continue  # open documents are authoritative
            ls.session.file_changed_on_disk(path)
            for doc in ls.session.dependents(path):
                ls.schedule_diagnostics(doc)
                touched = True
        if touched:
            ls.request_refresh()

    @server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    @guarded("didChangeWorkspaceFolders")
    def did_change_folders(
        ls: DsxLanguageServer, params: types.DidChangeWorkspaceFoldersParams
    ) -> None:
        roots = set(ls.session.roots)
        roots -= {path_of(f.uri) for f in params.event.removed}
        roots |= {path_of(f.uri) for f in params.event.added}
        ls.session.set_roots(sorted(roots))

    # ---- features ---------------------------------------------------------------------
    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=completion.TRIGGER_CHARACTERS),
    )
    @guarded("completion", types.CompletionList(is_incomplete=False, items=[]))
    def on_completion(ls: DsxLanguageServer, params: types.CompletionParams) -> Any:
        doc = _doc(ls, params.text_document.uri)
        if doc is None:
            return None
        return completion.complete(
            ls.session,
            doc,
            params.position,
            snippets=ls.snippet_support and ls.options.snippets,
        )

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    @guarded("hover")
    def on_hover(ls: DsxLanguageServer, params: types.HoverParams) -> Any:
        doc = _doc(ls, params.text_document.uri)
        return hover.hover(ls.session, doc, params.position) if doc else None

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    @guarded("definition")
    def on_definition(ls: DsxLanguageServer, params: types.DefinitionParams) -> Any:
        doc = _doc(ls, params.text_document.uri)
        return navigation.definition(ls.session, doc, params.position) if doc else None

    @server.feature(types.TEXT_DOCUMENT_REFERENCES)
    @queued("references", [], stale=False)
    def on_references(ls: DsxLanguageServer, params: types.ReferenceParams) -> Any:
        doc = _doc(ls, params.text_document.uri)
        if doc is None:
            return []
        return navigation.references(
            ls.session,
            doc,
            params.position,
            include_declaration=params.context.include_declaration,
        )

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_HIGHLIGHT)
    @guarded("documentHighlight")
    def on_highlight(ls: DsxLanguageServer, params: types.DocumentHighlightParams) -> Any:
        doc = _doc(ls, params.text_document.uri)
        return navigation.highlights(ls.session, doc, params.position) if doc else None

    @server.feature(types.TEXT_DOCUMENT_RENAME, types.RenameOptions(prepare_provider=True))
    @queued("rename")
    def on_rename(ls: DsxLanguageServer, params: types.RenameParams) -> Any:
        doc = _doc(ls, params.text_document.uri)
        return rename.rename(ls.session, doc, params.position, params.new_name) if doc else None

    @server.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)
    @guarded("prepareRename")
    def on_prepare_rename(ls: DsxLanguageServer, params: types.PrepareRenameParams) -> Any:
        doc = _doc(ls, params.text_document.uri)
        return rename.prepare_rename(ls.session, doc, params.position) if doc else None

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    @queued("documentSymbol", [])
    def on_document_symbol(ls: DsxLanguageServer, params: types.DocumentSymbolParams) -> Any:
        doc = _doc(ls, params.text_document.uri)
        return outline.document_symbols_json(ls.session, doc) if doc else []

    @server.feature(types.WORKSPACE_SYMBOL)
    @queued("workspaceSymbol", [], stale=False)
    def on_workspace_symbol(ls: DsxLanguageServer, params: types.WorkspaceSymbolParams) -> Any:
        return outline.workspace_symbols(ls.session, params.query)

    @server.feature(types.TEXT_DOCUMENT_FORMATTING)
    @queued("formatting", [], stale=False)
    def on_formatting(ls: DsxLanguageServer, params: types.DocumentFormattingParams) -> Any:
        doc = _doc(ls, params.text_document.uri)
        return formatting.format_document(ls.session, doc) if doc else []

    @server.feature(types.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL, semantic_tokens.LEGEND)
    @queued("semanticTokens", types.SemanticTokens(data=[]))
    def on_semantic_tokens(ls: DsxLanguageServer, params: types.SemanticTokensParams) -> Any:
        doc = _doc(ls, params.text_document.uri)
        if doc is None:
            return None
        return semantic_tokens.as_json(semantic_tokens.semantic_tokens(ls.session, doc))

    @server.feature(types.TEXT_DOCUMENT_SEMANTIC_TOKENS_FULL_DELTA, semantic_tokens.LEGEND)
    @queued("semanticTokens", types.SemanticTokens(data=[]))
    def on_semantic_tokens_delta(
        ls: DsxLanguageServer, params: types.SemanticTokensDeltaParams
    ) -> Any:
        doc = _doc(ls, params.text_document.uri)
        if doc is None:
            return None
        return semantic_tokens.as_json(
            semantic_tokens.semantic_tokens_delta(ls.session, doc, params.previous_result_id)
        )

    @server.feature(types.TEXT_DOCUMENT_SEMANTIC_TOKENS_RANGE, semantic_tokens.LEGEND)
    @queued("semanticTokens", types.SemanticTokens(data=[]))
    def on_semantic_tokens_range(
        ls: DsxLanguageServer, params: types.SemanticTokensRangeParams
    ) -> Any:
        doc = _doc(ls, params.text_document.uri)
        if doc is None:
            return None
        return semantic_tokens.as_json(
            semantic_tokens.semantic_tokens_range(ls.session, doc, params.range)
        )

    @server.feature(
        types.TEXT_DOCUMENT_SIGNATURE_HELP,
        types.SignatureHelpOptions(
            trigger_characters=signature_help.TRIGGER_CHARACTERS,
            retrigger_characters=signature_help.RETRIGGER_CHARACTERS,
        ),
    )
    @guarded("signatureHelp")
    def on_signature_help(ls: DsxLanguageServer, params: types.SignatureHelpParams) -> Any:
        doc = _doc(ls, params.text_document.uri)
        return signature_help.signature_help(ls.session, doc, params.position) if doc else None

    @server.feature(types.TEXT_DOCUMENT_FOLDING_RANGE)
    @queued("foldingRange", [])
    def on_folding_range(ls: DsxLanguageServer, params: types.FoldingRangeParams) -> Any:
        doc = _doc(ls, params.text_document.uri)
        return folding.folding_ranges(ls.session, doc) if doc else []

    @server.feature(types.TEXT_DOCUMENT_SELECTION_RANGE)
    @guarded("selectionRange", [])
    def on_selection_range(ls: DsxLanguageServer, params: types.SelectionRangeParams) -> Any:
        doc = _doc(ls, params.text_document.uri)
        return selection.selection_ranges(ls.session, doc, list(params.positions)) if doc else []

    @server.feature(types.TEXT_DOCUMENT_INLAY_HINT)
    @queued("inlayHint", [])
    def on_inlay_hint(ls: DsxLanguageServer, params: types.InlayHintParams) -> Any:
        doc = _doc(ls, params.text_document.uri)
        return inlay_hints.inlay_hints(ls.session, doc, params.range) if doc else []

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS)
    @queued("codeLens", [])
    def on_code_lens(ls: DsxLanguageServer, params: types.CodeLensParams) -> Any:
        doc = _doc(ls, params.text_document.uri)
        return code_lens.code_lenses(ls.session, doc) if doc else []

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]),
    )
    @guarded("codeAction", [])
    def on_code_action(ls: DsxLanguageServer, params: types.CodeActionParams) -> Any:
        doc = _doc(ls, params.text_document.uri)
        return code_actions.code_actions(ls.session, doc, params.range) if doc else []

    @server.feature(preview.METHOD)
    async def on_render_prompt(ls: DsxLanguageServer, params: Any) -> Any:
        return await preview_request(ls, params)

    return server


async def preview_request(ls: DsxLanguageServer, params: Any) -> Any:
    """``dsx/renderPrompt``: a refusal (bad params, nothing to render) is an error answer
    carrying its message; an internal error is logged and answered the same way."""
    if not isinstance(params, dict) or not isinstance(params.get("uri"), str):
        # Plain JSON: the params of dsx/ methods are not structured (protocol.py).
        raise JsonRpcInvalidParams(message="dsx/renderPrompt needs {uri, program?, inputs?, ...}")
    doc = _doc(ls, params["uri"])
    if doc is None:
        raise JsonRpcInvalidParams(message=f"no document {params['uri']}")
    try:
        ls._fault("preview")
        analysis = ls.session.analyze(doc)  # the current text: the preview follows edits
        if analysis.errors:
            raise preview.PreviewError(
                f"the file has {len(analysis.errors)} error(s); fix them to update the preview"
            )
        allow = params.get("allowPython") is True
        if analysis.unit.python and allow:
            # A child process imports the user's Python; the server goes on meanwhile.
            return await asyncio.to_thread(
                preview.render_request, analysis.unit, params, allow_python=True
            )
        return preview.render_request(analysis.unit, params, allow_python=allow)
    except preview.PreviewError as exc:
        raise JsonRpcServerError(str(exc), PREVIEW_REFUSED) from None
    except Exception as exc:
        ls.report_internal("preview", exc)
        raise JsonRpcServerError(
            f"internal error in the preview: {exc!r}", PREVIEW_REFUSED
        ) from None


def _register_pull(server: DsxLanguageServer) -> None:
    """Offer ``textDocument/diagnostic`` (registered during ``initialize`` so that a client
    that cannot pull is never told the server can)."""
    if types.TEXT_DOCUMENT_DIAGNOSTIC in server.protocol.fm.features:
        return

    @server.feature(
        types.TEXT_DOCUMENT_DIAGNOSTIC,
        types.DiagnosticOptions(
            identifier="dsx", inter_file_dependencies=True, workspace_diagnostics=False
        ),
    )
    @queued("diagnostics", types.RelatedFullDocumentDiagnosticReport(items=[]), stale=False)
    def on_diagnostic(ls: DsxLanguageServer, params: types.DocumentDiagnosticParams) -> Any:
        doc = _doc(ls, params.text_document.uri)
        if doc is None:
            return types.RelatedFullDocumentDiagnosticReport(items=[])
        return diagnostics.pull(ls.session, doc, params.previous_result_id)


def _encoding(name: str) -> Encoding:
    if name in ("utf-8", "utf-32"):
        return name  # type: ignore[return-value]
    return "utf-16"
