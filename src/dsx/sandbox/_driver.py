# mypy: ignore-errors
# (Guest code: untyped on purpose, it runs on whatever python3 the sandbox has.)
"""The guest side of the protocol: a read-eval loop that runs *inside* the sandbox.

The host never imports this module; it passes its source to the guest interpreter
(``python -c``): CPython 3.12 for WASI under Wasmtime, or the image's ``python3`` under
Docker. It must therefore run on Python 3.8+ with the standard library only, and it
starts fast by importing as little as possible (``json``, ``ast`` and ``traceback`` cost
over 200 ms to import under WASI; the C modules ``_json`` and ``_ast`` cost almost nothing).

Protocol: the host writes one JSON object per line to stdin. The guest answers on fd 1
with lines ``<token> <json>``; anything else on fd 1 is the guest's own raw output. The
token is random per session, so ordinary printing can never be taken for a message (code
that goes looking for it can forge messages, but only about itself: the host trusts
nothing the guest says). ``print`` inside executed code is captured, not written to fd 1.
"""

import _json
import io
import posix
import sys

_TOKEN = sys.argv[1].encode("ascii")
_PID = posix.getpid()
_IN = sys.stdin.buffer
_BUILTINS = sys.modules["builtins"]


class _Ctx:
    strict = False
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float


_scan = _json.make_scanner(_Ctx())


def _no_default(obj):
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _dumps(obj):
    # A fresh markers dict each call: the C encoder keeps visited ids there.
    enc = _json.make_encoder(
        {}, _no_default, _json.encode_basestring_ascii, None, ":", ",", False, False, True
    )
    return "".join(enc(obj, 0))


def _loads(text):
    text = text.strip()
    obj, end = _scan(text, 0)
    if end != len(text):
        raise ValueError("trailing data")
    return obj


_CONFIG = _loads(sys.argv[2])
sys.argv[:] = [""]
_MAX_OUTPUT = int(_CONFIG.get("max_output", 65536))
_MAX_VALUE = int(_CONFIG.get("max_value", 8 << 20))
_STATE = {"busy": False, "interrupted": False, "cell": 0, "exec_id": None, "seq": 0}
_CELLS = {}


def _send(obj):
    _write(_TOKEN + b" " + _dumps(obj).encode("ascii") + b"\n")


def _write(data):
    view = memoryview(data)
    while view:
        view = view[posix.write(1, view) :]


def _setup_limits():
    if _CONFIG.get("rlimit_as"):
        import resource

        limit = int(_CONFIG["rlimit_as"])
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if _CONFIG.get("signals"):
        import signal

        def on_sigint(signum, frame):
            # Only user code is interrupted; the driver's own I/O must never be torn.
            if _STATE["busy"]:
                _STATE["interrupted"] = True
                raise KeyboardInterrupt

        signal.signal(signal.SIGINT, on_sigint)


class _Capture(io.TextIOBase):
    """A text stream keeping the first ``_MAX_OUTPUT`` characters written to it."""

    def __init__(self):
        self.parts = []
        self.size = 0
        self.truncated = False

    def writable(self):
        return True

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        room = _MAX_OUTPUT - self.size
        if len(s) > room:
            self.truncated = True
            s = s[: max(room, 0)]
        if s:
            self.parts.append(s)
            self.size += len(s)
        return len(s)

    def getvalue(self):
        return "".join(self.parts)


class ToolError(Exception):
    """A host tool raised; the concrete class is named after the host's exception."""


class _Submitted(BaseException):
    pass


_ERROR_CLASSES = {}


def _tool_exception(error):
    name = str(error.get("type") or "ToolError")
    base = Exception
    for candidate in error.get("bases") or ():
        found = getattr(_BUILTINS, str(candidate), None)
        if isinstance(found, type) and issubclass(found, Exception):
            base = found
            break
    key = (name, base)
    cls = _ERROR_CLASSES.get(key)
    if cls is None:
        bases = (ToolError,) if base is Exception else (ToolError, base)
        cls = type(name if name.isidentifier() else "ToolError", bases, {})
        _ERROR_CLASSES[key] = cls
    args = error.get("args")
    if isinstance(args, list) and args and len(_dumps(args)) < 65536:
        return cls(*args)
    return cls(str(error.get("message", "")))


_MISSING = type("_Missing", (), {"__repr__": lambda self: "<default>"})()


def _call_tool(name, args, kwargs):
    args = list(args)
    for i, arg in enumerate(args):
        if arg is _MISSING:
            del args[i:]
            break
    kwargs = {k: v for k, v in kwargs.items() if v is not _MISSING}
    _STATE["seq"] += 1
    seq = _STATE["seq"]
    exec_id = _STATE["exec_id"]
    try:
        # The arguments travel as one JSON string: the host decodes them on a budget.
        payload = _dumps([args, kwargs])
    except (TypeError, ValueError) as exc:
        raise TypeError(f"arguments of tool {name}() must be JSON-serializable: {exc}") from None
    msg = {"type": "call", "id": exec_id, "seq": seq, "tool": name, "args_json": payload}
    data = _TOKEN + b" " + _dumps(msg).encode("ascii") + b"\n"
    _write(data)
    while True:
        line = _IN.readline()
        if not line:
            posix._exit(0)  # the host has gone
        try:
            reply = _loads(line.decode("utf-8"))
        except Exception:
            continue
        if reply.get("op") == "reply" and reply.get("id") == exec_id and reply.get("seq") == seq:
            break
    if reply.get("ok"):
        return reply.get("value")
    raise _tool_exception(reply.get("error") or {})


_STUBS = {}
_KINDS = ("po", "pk", "var", "kw", "varkw")


def _make_stub(spec):
    key = _dumps(spec)
    stub = _STUBS.get(key)
    if stub is not None:
        return stub
    name = spec["name"]
    params, positional, keywords, defaults = [], [], [], []
    seen_po = seen_star = False
    for p in spec["params"]:
        pname, kind = p["name"], p["kind"]
        if not (pname.isidentifier() and kind in _KINDS):
            raise ValueError(f"bad parameter spec for tool {name}: {p!r}")
        text = pname
        if p.get("has_default"):
            defaults.append(p.get("default", _MISSING))
            text += f"=__dsx_defaults[{len(defaults) - 1}]"
        if kind == "po":
            seen_po = True
        elif seen_po:
            params.append("/")
            seen_po = False
        if kind == "var":
            text, seen_star = "*" + pname, True
            positional.append("*" + pname)
        elif kind == "varkw":
            text = "**" + pname
            keywords.append("**" + pname)
        elif kind == "kw":
            if not seen_star:
                params.append("*")
                seen_star = True
            keywords.append(f"{pname!r}: {pname}")
        else:
            positional.append(pname)
        params.append(text)
    if seen_po:
        params.append("/")
    source = (
        f"def {name}({', '.join(params)}):\n"
        f"    return __dsx_call({name!r}, [{', '.join(positional)}], {{{', '.join(keywords)}}})\n"
    )
    scope = {"__dsx_call": _call_tool, "__dsx_defaults": defaults}
    exec(compile(source, f"<tool {name}>", "exec", 0, True), scope)
    stub = scope[name]
    stub.__doc__ = spec.get("doc") or None
    stub.__annotations__ = dict(spec.get("annotations") or {})
    stub.__module__ = "tools"
    _STUBS[key] = stub
    return stub


def SUBMIT(*args, **kwargs):
    """Finish with a final answer: ``SUBMIT(x)``, ``SUBMIT(a, b)`` or ``SUBMIT(name=value)``."""
    if args and kwargs:
        raise TypeError("SUBMIT takes positional or keyword arguments, not both")
    value = args[0] if len(args) == 1 else (list(args) if args else kwargs)
    _STATE["final"] = (value,)
    raise _Submitted


_NS = {
    "__name__": "__main__",
    "__builtins__": _BUILTINS,
    "SUBMIT": SUBMIT,
    "ToolError": ToolError,
}


def _json_or_repr(value):
    try:
        text = _dumps(value)
        if len(text) <= _MAX_VALUE:
            return text, _safe_repr(value)
    except Exception:
        pass
    return None, _safe_repr(value)


def _safe_repr(value):
    try:
        text = repr(value)
    except Exception as exc:
        text = f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    return text if len(text) <= _MAX_OUTPUT else text[:_MAX_OUTPUT] + "...[truncated]"


def _frame_text(filename, lineno, name):
    text = f'  File "{filename}", line {lineno}, in {name}'
    lines = _CELLS.get(filename)
    if lines and 0 < lineno <= len(lines):
        text += "\n    " + lines[lineno - 1].strip()
    return text


def _error(exc, cell_file):
    try:
        message = str(exc)
    except Exception:
        message = "<exception str() failed>"
    frames, line = [], None
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename != "<string>":  # the driver's own frames
            frames.append(_frame_text(code.co_filename, tb.tb_lineno, code.co_name))
            if code.co_filename == cell_file:
                line = tb.tb_lineno
        tb = tb.tb_next
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        message = str(exc.msg)
        text = f'  File "{exc.filename}", line {exc.lineno}'
        if exc.text:
            src = exc.text.rstrip("\n")
            stripped = src.lstrip()
            text += "\n    " + stripped
            if exc.offset:
                caret = max(exc.offset - (len(src) - len(stripped)), 1)
                text += "\n    " + " " * (caret - 1) + "^"
        frames.append(text)
        if exc.filename == cell_file:
            line = exc.lineno
    return {
        "type": type(exc).__name__,
        "message": message[:_MAX_OUTPUT],
        "traceback": frames[-50:],
        "line": line,
    }


def _register_linecache():
    # Only if the user imported it: importing linecache at start-up would cost 30 ms.
    linecache = sys.modules.get("linecache")
    if linecache is not None:
        for filename, lines in _CELLS.items():
            text = "".join(lines)
            linecache.cache[filename] = (len(text), None, lines, filename)


def _execute(msg):
    import _ast

    _STATE["cell"] += 1
    cell_file = f"<cell {_STATE['cell']}>"
    code = msg.get("code", "")
    _CELLS[cell_file] = code.splitlines(True)
    _STATE.update(exec_id=msg.get("id"), seq=0, interrupted=False)
    _STATE.pop("final", None)
    _NS.update(msg.get("vars") or {})
    for spec in msg.get("tools") or ():
        _NS[spec["name"]] = _make_stub(spec)
    out, err = _Capture(), _Capture()
    saved = sys.stdout, sys.stderr, sys.stdin
    sys.stdout, sys.stderr, sys.stdin = out, err, io.StringIO("")
    result = {"type": "result", "id": msg.get("id"), "ok": True, "error": None}
    value = None
    has_value = False
    try:
        _register_linecache()
        _STATE["busy"] = True
        tree = compile(code, cell_file, "exec", _ast.PyCF_ONLY_AST, True)
        last = None
        if tree.body and isinstance(tree.body[-1], _ast.Expr):
            last = _ast.Expression(tree.body.pop().value)
        exec(compile(tree, cell_file, "exec", 0, True), _NS)
        if last is not None:
            value = eval(compile(last, cell_file, "eval", 0, True), _NS)
            has_value = value is not None
    except _Submitted:
        pass
    except BaseException as exc:
        result["ok"] = False
        result["error"] = _error(exc, cell_file)
    finally:
        if posix.getpid() != _PID:
            posix._exit(0)  # a process the code forked must not speak for the driver
        _STATE["busy"] = False
        sys.stdout, sys.stderr, sys.stdin = saved
    result["interrupted"] = _STATE["interrupted"]
    result["stdout"] = out.getvalue()
    result["stderr"] = err.getvalue()
    result["stdout_truncated"] = out.truncated or err.truncated
    result["has_value"] = has_value
    if has_value:
        result["value_json"], result["value_repr"] = _json_or_repr(value)
    final = _STATE.pop("final", None)
    result["submitted"] = final is not None
    if final is not None:
        result["final_json"], result["final_repr"] = _json_or_repr(final[0])
    return result


def _reap():
    """Kill every process the code left behind (all but this driver and init)."""
    try:
        posix.kill(-1, 9)
    except OSError:  # nothing else to kill
        return
    # Collect our own children (init collects the rest), briefly: SIGKILL is quick.
    for _ in range(200):
        try:
            pid, _status = posix.waitpid(-1, posix.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            import time

            time.sleep(0.005)


def _exit_on_hangup():
    # The host is gone (its end of stdin closed): exit even while user code runs, so a
    # container never outlives its host. Only polls, never reads: the main thread does.
    import select

    poller = select.poll()
    poller.register(0, 0)  # POLLHUP and POLLERR are always reported
    while True:
        for _fd, events in poller.poll():
            if events & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                posix._exit(0)


def _main():
    _setup_limits()
    if _CONFIG.get("exit_on_hangup"):
        import _thread

        _thread.start_new_thread(_exit_on_hangup, ())
    _send({"type": "ready", "protocol": 2, "python": sys.version.split()[0]})
    while True:
        try:
            line = _IN.readline()
            if not line:
                break
            msg = _loads(line.decode("utf-8"))
            if msg.get("op") != "exec":
                continue  # a late tool reply, or noise
            reply = _execute(msg)
            if _CONFIG.get("reap"):
                _reap()
        except KeyboardInterrupt:
            continue
        except BaseException as exc:  # the driver itself failed (e.g. out of memory)
            reply = {
                "type": "result",
                "id": _STATE["exec_id"],
                "ok": False,
                "driver_error": repr(exc)[:1000],
            }
        try:
            _send(reply)
        except BaseException as exc:
            _send(
                {
                    "type": "result",
                    "id": reply.get("id"),
                    "ok": False,
                    "driver_error": f"could not send the result: {type(exc).__name__}",
                }
            )
    posix._exit(0)


_main()
