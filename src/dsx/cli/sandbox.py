"""``dsx sandbox build-image | check``: the sandbox's command-line face.

``python -m dsx.sandbox.cli ...`` runs it alone (:func:`main`; CI uses that to build the
image).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser", "main", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``sandbox`` (with ``build-image`` and ``check``) to an argparse subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "sandbox",
        help="manage the code sandbox (Docker image, backend check)",
        description="Manage the sandbox that runs LM-written code.",
    )
    from dsx.sandbox._docker import DEFAULT_IMAGE  # no docker import: just the name

    sub = parser.add_subparsers(dest="sandbox_command", metavar="COMMAND")
    sub.required = True
    build = sub.add_parser(
        "build-image",
        help="build the Docker backend's Python image locally (no registry needed)",
        description=(
            "Bootstrap a minimal Debian with python3 (debootstrap; needs root) and import "
            "it into the local Docker engine."
        ),
    )
    build.add_argument("--name", default=None, help=f"image name (default: {DEFAULT_IMAGE})")
    build.add_argument(
        "--dir",
        default=None,
        help="keep the root file system here and reuse it next time (default: a temp dir)",
    )
    build.add_argument("--mirror", default=None, help="Debian mirror URL for debootstrap")
    build.set_defaults(sandbox_handler=_build_image)
    check = sub.add_parser(
        "check",
        help="say which sandbox backends can run here, and what is missing",
        description="Check the Wasmtime and Docker backends; exit 1 if none can run.",
    )
    check.add_argument(
        "--image", default=None, help=f"Docker image to look for (default: {DEFAULT_IMAGE})"
    )
    check.set_defaults(sandbox_handler=_check)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    return int(args.sandbox_handler(args))


def _build_image(args: argparse.Namespace) -> int:
    from dsx.sandbox._types import SandboxUnavailable
    from dsx.sandbox.image import build_image

    try:
        build_image(args.name, rootfs=args.dir, mirror=args.mirror, log=_say)
    except SandboxUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # --dir is a file, cannot be created or written
        where = exc.filename or args.dir
        print(
            f"error: cannot use {where} for the image's root file system: "
            f"{exc.strerror or exc} (give --dir a directory dsx may create and write)",
            file=sys.stderr,
        )
        return 1
    return 0


def _check(args: argparse.Namespace) -> int:
    from dsx.sandbox.image import check_backends

    report = check_backends(image=args.image)
    for backend, problem in report.items():
        print(f"{backend}: {'ok' if problem is None else 'unavailable: ' + problem}")
    return 0 if any(problem is None for problem in report.values()) else 1


def _say(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m dsx.sandbox.cli build-image ...`` (the same as ``dsx sandbox ...``)."""
    parser = argparse.ArgumentParser(prog="dsx")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["sandbox", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))
