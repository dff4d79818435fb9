"""``dsx lsp``: run the language server over stdio (what editors start) or TCP.

``python -m dsx.lsp`` runs it too (:func:`main`); pygls is imported only by :func:`run`.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["add_arguments", "add_parser", "main", "run"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 2087
RECURSION_LIMIT = 20_000


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``lsp`` to the sub-commands of the ``dsx`` parser; returns its parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "lsp",
        help="run the .dsx language server",
        description=(
            "Run the .dsx language server (diagnostics, completion, hover, go to definition, "
            "references, rename, symbols, formatting, semantic tokens, code lenses, quick "
            "fixes). Editors start it over stdio; --tcp listens on a socket instead."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's options, shared by ``dsx lsp`` and ``python -m dsx.lsp``."""
    parser.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default)")
    parser.add_argument("--tcp", action="store_true", help="listen on a TCP socket instead")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"TCP host (default: {DEFAULT_HOST})")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default: {DEFAULT_PORT})"
    )
    parser.add_argument("--log-file", metavar="PATH", help="also write the server's log to PATH")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log debug messages (to stderr)"
    )


def run(args: argparse.Namespace) -> int:
    """Start the server; returns when the client disconnects."""
    import errno
    import logging

    level = logging.DEBUG if getattr(args, "verbose", False) else logging.WARNING
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if getattr(args, "log_file", None):
        try:
            handlers.append(logging.StreamHandler(_open_log(args.log_file)))
        except OSError as exc:
            reason = (
                "a named pipe no program reads" if exc.errno == errno.ENXIO else exc.strerror or exc
            )
            print(
                f"dsx lsp: cannot write the log file {args.log_file}: {reason} "
                "(give a writable file path to --log-file)",
                file=sys.stderr,
            )
            return 2
    logging.basicConfig(
        level=level, handlers=handlers, format="%(levelname)s %(name)s: %(message)s"
    )
    if getattr(args, "tcp", False) and getattr(args, "stdio", False):
        print("dsx lsp: choose one of --stdio and --tcp", file=sys.stderr)
        return 2
    from dsx.lsp.server import create_server  # pygls loads only here

    # The front end recurses per nesting level (an `if` inside an `if`...); a deeply nested
    # file must cost an error in one feature at worst, not the default 1,000-frame limit.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    server = create_server()
    if args.tcp:
        print(f"dsx lsp: listening on {args.host}:{args.port}", file=sys.stderr, flush=True)
        server.start_tcp(args.host, args.port)
    else:
        server.start_io()
    return server.exit_code  # 1 after `exit` without `shutdown` (the LSP says so)


def _open_log(path: str) -> Any:
    """``path`` opened for appending; a FIFO no program reads is an error, not a hang."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK, 0o666)
    os.set_blocking(fd, True)
    return open(fd, "a", encoding="utf-8", errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dsx.lsp", description="the .dsx language server"
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
