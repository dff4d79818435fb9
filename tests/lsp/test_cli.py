"""`dsx lsp` / `python -m dsx.lsp`: arguments, help, and a light import."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys


def test_cli_parser_and_help():
    from dsx.lsp.cli import add_lsp_command

    parser = argparse.ArgumentParser(prog="dsx")
    sub = parser.add_subparsers(dest="command")
    add_lsp_command(sub)
    args = parser.parse_args(["lsp", "--tcp", "--port", "9999"])
    assert args.tcp and args.port == 9999 and args.host == "127.0.0.1"
    assert callable(args.func)
    args = parser.parse_args(["lsp"])
    assert not args.tcp
    out = subprocess.run(
        [sys.executable, "-m", "dsx.lsp", "--help"], capture_output=True, text=True, check=True
    )
    assert "--tcp" in out.stdout


def test_importing_the_cli_module_does_not_load_pygls():
    code = "import sys, dsx.lsp.cli; print('pygls' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert out.stdout.strip() == "False"
