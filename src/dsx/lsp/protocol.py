"""JSON-RPC and LSP conformance around pygls: the error answers pygls 2.1 does not give.

pygls structures each message while ``json.loads`` reads it, and a message that does not
fit its type (a negative position, a missing field, a string for a number) raises out of
the reader loop: the request is never answered and the client waits forever. pygls also
answers requests before ``initialize`` and drops requests after ``shutdown`` silently. This
protocol class answers each such request with the error the specifications name:

* invalid params → ``-32602`` (InvalidParams), with what was wrong and where;
* a body that is not JSON → ``-32700`` (ParseError, id ``null``);
* JSON that is not a JSON-RPC 2.0 message → ``-32600`` (InvalidRequest);
* a request before ``initialize`` → ``-32002`` (ServerNotInitialized); notifications
  then are dropped, except ``exit``;
* a second ``initialize`` and any request after ``shutdown`` → ``-32600``;
* ``exit`` ends the process with status 0 after ``shutdown`` and 1 without
  (:attr:`DsxProtocol.exit_code`, which ``dsx lsp`` returns).

Notifications are never answered (JSON-RPC); a malformed one is logged and dropped.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
from cattrs.errors import ClassValidationError
from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException,
    JsonRpcInvalidParams,
    JsonRpcInvalidRequest,
    JsonRpcParseError,
    JsonRpcServerNotInitialized,
)
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.json_rpc import (
    JsonRPCNotification,
    JsonRPCRequestMessage,
    JsonRPCResponseMessage,
    RPCNotification,
    RPCRequest,
    RPCResponse,
)

if TYPE_CHECKING:
    from cattrs import Converter

__all__ = ["DsxProtocol", "Malformed", "RawJson", "is_parse_error", "strict_scalars"]

log = logging.getLogger("dsx.lsp")

#: How many problems an invalid-params message lists.
MAX_PROBLEMS = 5


@attrs.define
class RawRequest:
    """A request for one of dsx's own methods (``dsx/...``): ``params`` stay plain JSON
    (pygls would turn them into named tuples, renaming keys that are not identifiers)."""

    id: int | str
    method: str
    jsonrpc: str
    params: Any = None


@attrs.define
class RawNotification:
    """A notification for one of dsx's own methods, with plain JSON ``params``."""

    method: str
    jsonrpc: str
    params: Any = None


#: The prefix of dsx's own methods.
DSX_PREFIX = "dsx/"


#: Writes in flight on an asynchronous transport (kept referenced until done).
_WRITES: set[asyncio.Future[Any]] = set()


class RawJson:
    """A result already written as JSON text: sent as it is. A big answer (the outline
    of 5,000 lines) costs ~25 ms to unstructure with cattrs on every request; features
    keep the JSON of what an edit left alone and join it."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


@attrs.define
class Malformed:
    """A message that could not be structured: answered with ``error`` when it is a request.

    ``id`` is the request's id, or ``None`` when the message has none (or an unusable one).
    """

    id: int | str | None
    method: str | None
    error: JsonRpcException
    request: bool


def is_parse_error(exc: BaseException) -> bool:
    """Whether the reader loop failed to read a body as JSON (not JSON, not UTF-8, too deep)."""
    return isinstance(exc, json.JSONDecodeError | UnicodeDecodeError | RecursionError)


def _valid_id(value: Any) -> bool:
    return isinstance(value, int | str) and not isinstance(value, bool)


def _json_path(problem: str) -> str:
    """``... @ params.text_document.uri`` → ``... @ params.textDocument.uri`` (the client's
    names, not lsprotocol's attribute names)."""
    what, sep, where = problem.rpartition(" @ ")
    if not sep:
        return problem
    return f"{what} @ " + re.sub(r"_([a-z])", lambda m: m.group(1).upper(), where)


def _problems(exc: ClassValidationError) -> str:
    try:
        from cattrs.v import format_exception, transform_error

        def describe(leaf: BaseException, kind: type | None) -> str:
            # A validator's own message ("Position.line should be in range...") says more
            # than cattrs' generic "invalid value".
            if type(leaf) is ValueError and "should be" in str(leaf):
                return str(leaf)
            return format_exception(leaf, kind)

        found = transform_error(exc, path="params", format_exception=describe)
    except Exception:  # the summary is a courtesy; never fail on it
        return str(exc)
    found = [_json_path(p.replace("params.params", "params")) for p in found]
    more = len(found) - MAX_PROBLEMS
    text = "; ".join(found[:MAX_PROBLEMS])
    return text + (f"; and {more} more" if more > 0 else "")


def _strict(kind: type, accepts: Callable[[Any], bool]) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _type: Any) -> Any:
        if not accepts(value):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return structure


def strict_scalars(converter: Converter) -> None:
    """Make ``converter`` refuse wrong scalar types instead of coercing them.

    lsprotocol's converter calls ``str()``/``int()``/``bool()`` on what it is given, so a
    number where a URI belongs becomes the URI ``"42"``, ``"5"`` becomes line 5 and
    ``"false"`` becomes ``True``; the specification calls those invalid params.
    """

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    converter.register_structure_hook(str, _strict(str, lambda v: isinstance(v, str)))
    converter.register_structure_hook(int, _strict(int, is_int))
    converter.register_structure_hook(bool, _strict(bool, lambda v: isinstance(v, bool)))
    converter.register_structure_hook(
        float, _strict(float, lambda v: is_int(v) or isinstance(v, float))
    )


class DsxProtocol(LanguageServerProtocol):
    """pygls' LSP protocol with the error answers of the JSON-RPC and LSP specifications."""

    def __init__(self, server: Any, converter: Converter) -> None:
        strict_scalars(converter)  # before pygls structures anything with it
        for kind in (RawRequest, RawNotification):
            converter.register_structure_hook(kind, lambda obj, cls: cls(**obj))
        super().__init__(server, converter)
        self.initialize_seen = False
        #: The process's exit status once ``exit`` arrived (``None`` before).
        self.exit_code: int | None = None
        #: Called with a request's params as it is read (before its handler runs).
        self.on_request: Callable[[Any], None] | None = None

    # ---- reading ----------------------------------------------------------------------
    def structure_message(self, data: dict[str, Any]) -> Any:
        """``json.loads``'s object hook: every JSON object, innermost first."""
        if "jsonrpc" not in data:
            return data
        has_id = "id" in data
        method = data.get("method")
        error: JsonRpcException
        if has_id and not _valid_id(data["id"]):
            error = JsonRpcInvalidRequest(message="Invalid Request: the id must be an int or str")
        elif "method" in data and not isinstance(method, str):
            error = JsonRpcInvalidRequest(message="Invalid Request: the method must be a string")
        else:
            try:
                return self._structure(data)
            except ClassValidationError as exc:
                error = JsonRpcInvalidParams(
                    message=f"Invalid params for {method!r}: {_problems(exc)}"
                )
            except Exception as exc:
                error = JsonRpcInvalidRequest(message=f"Invalid Request: {exc}")
        return Malformed(
            id=data["id"] if has_id and _valid_id(data["id"]) else None,
            method=method if isinstance(method, str) else None,
            error=error,
            request=has_id and "method" in data,
        )

    def get_message_type(self, method: str) -> Any:  # type: ignore[override]
        if method.startswith(DSX_PREFIX):
            return None  # _structure picks RawRequest / RawNotification
        return super().get_message_type(method)

    def _structure(self, data: dict[str, Any]) -> Any:
        if "method" not in data:
            if "id" not in data:
                raise ValueError("a message needs a method or an id")
            if "error" in data:
                return self._converter.structure(data, types.ResponseErrorMessage)
            kind = self._result_types.pop(data["id"], None) or JsonRPCResponseMessage
            return self._converter.structure(data, kind)
        method = data["method"]
        if method.startswith(DSX_PREFIX):
            return self._converter.structure(data, RawRequest if "id" in data else RawNotification)
        fallback = JsonRPCRequestMessage if "id" in data else JsonRPCNotification
        return self._converter.structure(data, self.get_message_type(method) or fallback)

    # ---- dispatching ------------------------------------------------------------------
    def handle_message(self, message: Any) -> None:
        if isinstance(message, Malformed):
            self._malformed(message)
            return
        if not isinstance(message, RPCRequest | RPCNotification | RPCResponse) and not hasattr(
            message, "error"
        ):
            # Valid JSON, but not a JSON-RPC message object (an array, a number, no jsonrpc).
            msg_id = message.get("id") if isinstance(message, dict) else None
            self.reply_error(
                msg_id if _valid_id(msg_id) else None,
                JsonRpcInvalidRequest(message="Invalid Request: not a JSON-RPC 2.0 message"),
            )
            return
        if getattr(message, "jsonrpc", None) != self.VERSION:
            msg_id = getattr(message, "id", None)
            if isinstance(message, RPCRequest):
                self.reply_error(
                    msg_id, JsonRpcInvalidRequest(message='Invalid Request: jsonrpc must be "2.0"')
                )
            return
        method = getattr(message, "method", None)
        request = isinstance(message, RPCRequest)
        if method == types.EXIT:
            self.exit_code = 0 if self._shutdown else 1
        elif method == types.INITIALIZE and request:
            if self.initialize_seen:
                self.reply_error(
                    message.id,
                    JsonRpcInvalidRequest(message="Invalid Request: initialize was already sent"),
                )
                return
            self.initialize_seen = True
        elif self._shutdown:
            if request:
                self.reply_error(
                    message.id,
                    JsonRpcInvalidRequest(
                        message=f"Invalid Request: the server is shut down ({method})"
                    ),
                )
            return
        elif not self.initialize_seen and method is not None:
            if request:
                self.reply_error(
                    message.id,
                    JsonRpcServerNotInitialized(
                        message=f"Server not initialized: send initialize before {method}"
                    ),
                )
            return  # notifications before initialize are dropped
        if request and self.on_request is not None:
            self.on_request(message.params)
        super().handle_message(message)

    def _malformed(self, message: Malformed) -> None:
        if message.request or (message.id is None and message.method is None):
            self.reply_error(message.id, message.error)
        else:
            log.warning("dsx lsp: dropped a malformed %s: %s", message.method, message.error)

    # ---- writing ----------------------------------------------------------------------
    def _send_response(self, msg_id: Any, result: Any = None, error: Any = None) -> None:
        if error is None and isinstance(result, RawJson):
            self._result_types.pop(msg_id, None)
            self._send_body(
                f'{{"jsonrpc": "2.0", "id": {json.dumps(msg_id)}, "result": {result.text}}}'
            )
            return
        super()._send_response(msg_id, result, error)

    def _send_body(self, body: str) -> None:
        """Write one message whose JSON ``body`` is ready (pygls' ``_send_data`` framing)."""
        if self.writer is None:
            log.error("dsx lsp: no transport to send a response on")
            return
        data = body.encode(self.CHARSET)
        header = (
            f"Content-Length: {len(data)}\r\n"
            f"Content-Type: {self.CONTENT_TYPE}; charset={self.CHARSET}\r\n\r\n"
        )
        res = self.writer.write(header.encode(self.CHARSET) + data)
        if inspect.isawaitable(res):
            task = asyncio.ensure_future(res)
            _WRITES.add(task)
            task.add_done_callback(_WRITES.discard)

    def reply_error(self, msg_id: int | str | None, error: JsonRpcException) -> None:
        """Answer request ``msg_id`` (``None``: a message whose id is unknown) with ``error``."""
        log.info("dsx lsp: error response to %r: %s %s", msg_id, error.code, error.message)
        self._send_data(types.ResponseErrorMessage(id=msg_id, error=error.to_response_error()))

    def reply_parse_error(self, exc: BaseException) -> None:
        """The reader loop could not read a body: answer with -32700 and id ``null``."""
        reason = "too deeply nested" if isinstance(exc, RecursionError) else str(exc)
        self.reply_error(None, JsonRpcParseError(message=f"Parse error: {reason}"))
