"""``dsx model serve | check``: declared with the local model, in :mod:`dsx.local.cli`."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from dsx.local.cli import add_model_command

    parser: argparse.ArgumentParser = add_model_command(subparsers)
    return parser


def run(args: argparse.Namespace) -> int:
    return int(args.func(args))
