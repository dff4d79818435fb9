"""``python -m dsx.testing.server``: a stand-alone :class:`~dsx.testing.server.OpenAIServer`."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from dsx.testing.server import OpenAIServer, Reply, ReplyLike, StructuredOutput

__all__ = ["main"]


def _load_script(path: Path) -> list[ReplyLike]:
    """Replies from a JSONL file: a string, a list of strings, or a Reply-shaped object."""
    replies: list[ReplyLike] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not JSON: {exc}") from None
        if isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(v, str) for v in value)
        ):
            replies.append(value)
        elif isinstance(value, dict) and set(value) <= {"content", "tool_calls", "finish_reason"}:
            replies.append(Reply(**value))
        else:
            raise ValueError(
                f"{path}:{number}: expected a string, a list of strings or an object with "
                f"content/tool_calls/finish_reason, got {line[:80]!r}"
            )
    return replies


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server from the command line until Ctrl-C (or SIGTERM)."""
    parser = argparse.ArgumentParser(
        prog="python -m dsx.testing.server",
        description="Serve a local OpenAI-compatible API (chat, completions, embeddings, "
        "models) that echoes the last user message, or replays a script of replies.",
        epilog="Point any OpenAI client at the printed api_base, e.g. "
        "OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_API_KEY=anything.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="TCP port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="delay before each response, like a slow model (default: %(default)s)",
    )
    parser.add_argument(
        "--script",
        type=Path,
        metavar="FILE.jsonl",
        help="serve these replies in order, one JSON value per line: a string, a list of "
        "strings (one per choice) or {content, tool_calls, finish_reason}; once they are "
        "used up, requests get HTTP 500",
    )
    parser.add_argument(
        "--embedding-dim",
        type=int,
        default=8,
        metavar="N",
        help="length of the deterministic pseudo-embeddings (default: %(default)s)",
    )
    parser.add_argument(
        "--structured-output",
        choices=get_args(StructuredOutput),
        default="openai",
        help="accept and refuse response_format types as this server does (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    script = None
    if args.script is not None:
        try:
            script = _load_script(args.script)
        except (OSError, ValueError) as exc:
            parser.error(str(exc))
    # Make `kill` (SIGTERM) unwind like Ctrl-C, so the server shuts down cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = OpenAIServer(
        script=script,
        latency=args.latency,
        host=args.host,
        port=args.port,
        embedding_dim=args.embedding_dim,
        structured_output=args.structured_output,
    )
    try:
        server.start()
    except OSError as exc:
        parser.error(f"cannot listen on {args.host}:{args.port}: {exc}")
    try:
        print(server.api_base, flush=True)
        print(f"dsx test server on {server.api_base} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    finally:
        server.stop()
    return 0
