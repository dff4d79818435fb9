"""``dsx index DATA --into ENGINE:PATH``: declared with the retrievers, in
:mod:`dsx.retrievers.cli`."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from dsx.retrievers.cli import add_index_command

    parser: argparse.ArgumentParser = add_index_command(subparsers)
    return parser


def run(args: argparse.Namespace) -> int:
    return int(args.func(args))
